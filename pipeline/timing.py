"""``BatchTiming``: when each micro-batch reached each point of the pipeline, in wall-clock µs.

One row per micro-batch, stamped by the runner on the driver (``PipelineRunner``) and by the router when
the batch's tables were committed. With the events' own stamps (``ts_sent`` by whoever put them on the
stream, ``ts_ingest`` Kinesis's arrival time) these give every event's latency by stage, in production
as in a replay: Kinesis arrival -> trigger start (waiting for the trigger), trigger start -> results
(reading, parsing, detectors), results -> alerts written (DynamoDB) and -> committed (the batch's rows
visible to a query: freshness).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BatchTiming:
    """One micro-batch's stamps (wall clock, µs since the Unix epoch)."""

    batch_id: int
    started_us: int
    """``foreachBatch`` entered: the trigger planned its offsets and starts reading."""
    collected_us: int
    """The batch's rows are on the driver (source read and parse, and the keyed step in state-store mode)."""
    results_us: int
    """Detector results available."""
    routed_us: int
    """Alerts written to the alert sinks (DynamoDB) and the tables handed to the table sinks (committed, or
    spooled for the background commit; in state-store mode with Spark's writer, the executors' appends
    done)."""
    collected_bytes: int = 0
    """What the batch's collect brought to the driver (Arrow bytes): every parsed row in driver mode, the
    per-key results in state-store mode, only the driver's tables with executor-side writes."""
    actions_us: Mapping[str, int] = field(default_factory=dict)
    """Wall µs of each Spark action the driver ran for the batch besides the first collect, by name
    (``write:<table>``: an executor-side append, ``pipeline.keyed_writes``)."""

    def to_dict(self) -> dict[str, Any]:
        """The stamps as one row (the extra actions as their count and total time)."""
        return {
            "batch_id": self.batch_id,
            "started_us": self.started_us,
            "collected_us": self.collected_us,
            "results_us": self.results_us,
            "routed_us": self.routed_us,
            "collected_bytes": self.collected_bytes,
            "actions": len(self.actions_us),
            "actions_us": sum(self.actions_us.values()),
        }
