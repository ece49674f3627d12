"""The independent reference implementation of the small-tier detectors, in Polars, batch.

Written from docs/DETECTORS.md alone; it never imports ``pipeline.detectors``. Only the shared contracts
(event ids, ``alert_id``, ``ALERT_SCHEMA``, the typed config) are reused. Every run compares the pipeline's
alerts, spread metrics and DQ counts with what this package computes from the same input.

Usage::

    result = run_reference(from_tape(Tape.open(path)), config)      # a tape replayed without faults
    result = run_reference(from_arrival(memory_target.table()), config)  # a faulted replay's arrival
    result = run_reference(from_wire(payloads), config)              # wire records in arrival order
"""

from __future__ import annotations

import polars as pl

from coattail.reference.alerts import alerts_table
from coattail.reference.data_quality import dq_counts, quarantine_counts
from coattail.reference.inputs import from_arrival, from_tape, from_wire
from coattail.reference.spread import spread_alerts, spread_metrics
from coattail.reference.stream import annotate, closing_limits
from coattail.reference.volume_anomaly import volume_alerts
from coattail.reference.whale import whale_alerts
from coattail.run.outputs import RunOutputs
from pipeline.config import Config

__all__ = ["from_arrival", "from_tape", "from_wire", "run_reference"]


def run_reference(frame: pl.DataFrame, config: Config) -> RunOutputs:
    """Run the small-tier detectors the tier enables over an arrival frame (see ``inputs``)."""
    delay = config.spark.watermark_seconds
    annotated = annotate(frame, watermark_seconds=delay, quote_usd=config.whale.quote_usd)
    limits = closing_limits(annotated, delay)
    rows = []
    metrics = spread_metrics(annotated, limits, config.spread)
    if config.enabled("MOD-001"):
        rows += whale_alerts(annotated, config.whale)
    if config.enabled("MOD-002"):
        rows += volume_alerts(annotated, limits, config.volume_anomaly)
    if config.enabled("MOD-003"):
        rows += spread_alerts(annotated, limits, metrics, config.spread)
    dq = pl.concat([dq_counts(annotated, config.data_quality), quarantine_counts(frame, config.data_quality)])
    return RunOutputs(
        alerts=alerts_table(rows),
        dq=dq if config.enabled("MOD-004") else dq.clear(),
        spread_metrics=metrics if config.enabled("MOD-003") else metrics.clear(),
        records_in=frame.height,
        valid=annotated.height,
    )
