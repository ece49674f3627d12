"""Where a micro-batch's time goes: Spark's own durations beside the runner's foreachBatch stamps.

    .venv/bin/python benchmarks/trigger_split.py RUN_DIR [RUN_DIR ...]

Reads each run's ``metrics/query_progress.json`` (Spark's ``durationMs`` per trigger) and
``metrics/batches.parquet`` (``BatchTiming``: started, collected, results, routed) and prints, per run,
the medians over the triggers that carried records, the first (cold) one left out:

- ``spacing``: from the trigger's start to the next trigger's; ``idle``: what of it is outside any
  trigger (from the end of ``triggerExecution`` to the next start: Spark's progress report and its
  wait for the next trigger); ``trigger``: Spark's ``triggerExecution``; ``addBatch``;
- ``before``: inside ``addBatch`` before the foreachBatch function started (the source's input
  partitions, where a small batch is de-aggregated, parsed and handed over, the call into Python):
  the trigger's start plus the phases Spark times before ``addBatch``, to ``started_us``;
- ``collect``, ``engine``, ``sinks``: the runner's own stamps;
- ``after``: what is left of ``addBatch`` after the runner routed the batch (its ``on_batch``
  callback).

``split`` is the same computation for a caller that holds the progress reports and stamps in memory
(``bench_pipeline.py throughput``).
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

BEFORE_ADD_BATCH = ("latestOffset", "getBatch", "queryPlanning", "walCommit")
"""The phases Spark runs and times before ``addBatch`` in a trigger."""


def split(progress: Sequence[Mapping[str, Any]], stamps: Mapping[int, Mapping[str, int]]) -> dict[str, float]:
    """Medians (ms) of each part over the triggers with records and stamps, the first one left out;
    ``stamps``: batch id -> ``BatchTiming.to_dict()``, with the batch's ``records_in`` where known (Spark
    counts no input rows for a batch the source handed over in a file, ``pipeline.source.handover``).
    Empty when fewer than two such triggers ran."""
    rows: list[dict[str, float]] = []
    starts = [_start_ms(report) for report in progress]
    for i, report in enumerate(progress):
        stamp = stamps.get(report["batchId"])
        if stamp is None:
            continue
        # Spark's numInputRows counts only what its scan read: none for a batch handed over in a file
        rows_in = stamp.get("records_in", report["numInputRows"])
        if not rows_in:
            continue
        d = report["durationMs"]
        start_ms = starts[i]
        # the next trigger's start, with records or not; a run's last trigger has none
        spacing = starts[i + 1] - start_ms if i + 1 < len(starts) else float("nan")
        before = stamp["started_us"] / 1e3 - start_ms - sum(d.get(k, 0) for k in BEFORE_ADD_BATCH)
        ours = (stamp["routed_us"] - stamp["started_us"]) / 1e3
        rows.append({
            "rows": rows_in,
            "spacing": spacing,
            "idle": spacing - d["triggerExecution"],
            "trigger": d["triggerExecution"],
            "addBatch": d.get("addBatch", 0),
            "before": before,
            "collect": (stamp["collected_us"] - stamp["started_us"]) / 1e3,
            "engine": (stamp["results_us"] - stamp["collected_us"]) / 1e3,
            "sinks": (stamp["routed_us"] - stamp["results_us"]) / 1e3,
            "after": d.get("addBatch", 0) - before - ours,
        })
    warm = rows[1:]
    if not warm:
        return {}
    return {
        name: round(statistics.median(r[name] for r in warm if r[name] == r[name]), 1)
        for name in warm[0]
        if any(r[name] == r[name] for r in warm)  # spacing is NaN on a run's last trigger only
    } | {"triggers": len(warm)}


def _start_ms(report: Mapping[str, Any]) -> float:
    """When the trigger of a progress report started (ms since the epoch)."""
    return datetime.fromisoformat(report["timestamp"].replace("Z", "+00:00")).timestamp() * 1e3


def run_split(run_dir: Path) -> dict[str, float]:
    """``split`` over a run directory's metrics files."""
    progress = json.loads((run_dir / "metrics" / "query_progress.json").read_text())
    batches = pl.read_parquet(run_dir / "metrics" / "batches.parquet")
    return split(progress, {row["batch_id"]: row for row in batches.iter_rows(named=True)})


def main() -> None:
    """Print one JSON line per run directory given."""
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for arg in sys.argv[1:]:
        print(json.dumps({"run": arg, **run_split(Path(arg))}))


if __name__ == "__main__":
    main()
