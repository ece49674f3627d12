"""The independent reference implementation of the detectors, in Polars, batch.

Written from docs/DETECTORS.md alone; it never runs ``pipeline.detectors`` (it names their settings
types for type checking only). Only the shared contracts (event ids, ``alert_id``, ``ALERT_SCHEMA``, the
typed config, the instrument registry) are reused. Every run compares the pipeline's alerts, spread,
flow and basis metrics and DQ counts with what this package computes from the same input.

Usage::

    result = run_reference(from_tape(Tape.open(path)), config)      # a tape replayed without faults
    result = run_reference(from_arrival(memory_target.table()), config)  # a faulted replay's arrival
    result = run_reference(arrival_target.frame(), config)  # the same, built as it is replayed (a day)
    result = run_reference(from_wire(payloads), config)              # wire records in arrival order
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import polars as pl

from coattail.reference.alerts import alerts_table
from coattail.reference.alpha_scoring import alpha_outputs
from coattail.reference.basis import basis_outputs
from coattail.reference.data_quality import dq_counts, quarantine_counts
from coattail.reference.flow_imbalance import flow_alerts, flow_metrics
from coattail.reference.inputs import from_arrival, from_tape, from_wire
from coattail.reference.momentum import momentum_alerts
from coattail.reference.onchain_whale import onchain_outputs
from coattail.reference.sliced_whale import sliced_alerts
from coattail.reference.spread import closed_quotes, spread_alerts, spread_metrics
from coattail.reference.stream import annotate, closing_limits
from coattail.reference.volume_anomaly import volume_alerts
from coattail.reference.whale import whale_alerts
from coattail.reference.whale_impact import impact_outputs
from coattail.run.outputs import BASIS_COLUMNS, IMPACT_COLUMNS, RunOutputs
from pipeline.config import Config

if TYPE_CHECKING:
    # the settings' types only: the reference never runs detector code
    from pipeline.detectors.alpha_scoring import AlphaSettings
    from pipeline.detectors.basis import BasisSettings
    from pipeline.detectors.data_quality import DataQualitySettings
    from pipeline.detectors.flow_imbalance import FlowImbalanceSettings
    from pipeline.detectors.momentum import MomentumSettings
    from pipeline.detectors.onchain_whale import OnchainWhaleSettings
    from pipeline.detectors.sliced_whale import SlicedWhaleSettings
    from pipeline.detectors.spread import SpreadSettings
    from pipeline.detectors.volume_anomaly import VolumeAnomalySettings
    from pipeline.detectors.whale import WhaleSettings
    from pipeline.detectors.whale_impact import WhaleImpactSettings

__all__ = ["from_arrival", "from_tape", "from_wire", "run_reference"]


def run_reference(frame: pl.DataFrame, config: Config) -> RunOutputs:
    """Run the detectors the tier enables over an arrival frame (see ``inputs``)."""
    delay = config.spark.watermark_seconds
    is_transfer = pl.col("kind") == "transfer"
    transfers = frame.filter(is_transfer & pl.col("reason").is_null())
    market = frame.filter(~is_transfer | pl.col("reason").is_not_null()) if transfers.height else frame
    annotated = annotate(market, watermark_seconds=delay, instruments=config.instruments)
    limits = closing_limits(annotated, delay)
    rows = []
    spread = cast("SpreadSettings", config.settings_for("MOD-003"))
    dq_settings = cast("DataQualitySettings", config.settings_for("MOD-004"))
    quotes = closed_quotes(annotated, limits, spread)
    metrics = spread_metrics(quotes, spread)
    spread_found = spread_alerts(quotes, metrics, spread) if config.enabled("MOD-003") else []
    del quotes  # a day's quotes: not held while the other modules run
    whales = []
    if config.enabled("MOD-001"):
        whales += whale_alerts(annotated, cast("WhaleSettings", config.settings_for("MOD-001")))
    if config.enabled("MOD-002"):
        volume = cast("VolumeAnomalySettings", config.settings_for("MOD-002"))
        rows += volume_alerts(annotated, limits, volume)
    rows += spread_found
    flow_settings = cast("FlowImbalanceSettings", config.settings_for("MOD-006"))
    # an empty input gives the empty table its schema when the tier leaves MOD-006 out
    flow = flow_metrics(annotated if config.enabled("MOD-006") else annotated.clear(), limits, flow_settings)
    if config.enabled("MOD-006"):
        rows += flow_alerts(annotated, flow, flow_settings)
    if config.enabled("MOD-007"):
        sliced = cast("SlicedWhaleSettings", config.settings_for("MOD-007"))
        whales += sliced_alerts(annotated, sliced, cast("WhaleSettings", config.settings_for("MOD-001")))
    rows += whales
    impact = pl.DataFrame(schema=IMPACT_COLUMNS)
    if config.enabled("MOD-008"):
        impact_settings = cast("WhaleImpactSettings", config.settings_for("MOD-008"))
        found_impact, impact = impact_outputs(annotated, whales, impact_settings, delay)
        rows += found_impact
    if config.enabled("MOD-009"):
        rows += momentum_alerts(annotated, cast("MomentumSettings", config.settings_for("MOD-009")), delay)
    dq = pl.concat([dq_counts(annotated, dq_settings), quarantine_counts(frame, dq_settings)])
    if not config.enabled("MOD-004"):
        dq = dq.clear()
    if config.enabled("MOD-010"):
        onchain = cast("OnchainWhaleSettings", config.settings_for("MOD-010"))
        found, transfer_dq = onchain_outputs(
            annotated, transfers, config, onchain, dq_settings.window_seconds
        )
        rows += found
        if config.enabled("MOD-004"):
            dq = pl.concat([dq, transfer_dq])
    basis = pl.DataFrame(schema=BASIS_COLUMNS)
    if config.enabled("MOD-005"):
        basis_settings = cast("BasisSettings", config.settings_for("MOD-005"))
        found, basis, stalls = basis_outputs(annotated, config, basis_settings)
        rows += found
        dq = pl.concat([dq, stalls])
    alpha: dict[str, pl.DataFrame] = {}
    if config.enabled("MOD-011"):
        found, alpha["alpha_scores"], alpha["signals"] = alpha_outputs(
            annotated, transfers, rows, config, cast("AlphaSettings", config.settings_for("MOD-011")),
            cast("SlicedWhaleSettings", config.settings_for("MOD-007")),
        )
        rows += found
    return RunOutputs(
        alerts=alerts_table(rows),
        dq=dq,
        spread_metrics=metrics if config.enabled("MOD-003") else metrics.clear(),
        records_in=frame.height,
        valid=annotated.height + transfers.height,
        flow_metrics=flow,
        basis_metrics=basis,
        whale_impact=impact,
        **alpha,
    )
