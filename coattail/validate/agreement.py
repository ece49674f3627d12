"""The pipeline's outputs against the reference implementation's, difference by difference.

Alerts are matched by ``alert_id``. Compared: every field of docs/DETECTORS.md's alert record that the
page defines (kind, times, window, severity, value, threshold; evidence and event ids where the page
lists their content); floats with a relative tolerance, since the two implementations may sum in a
different order. Not compared: the latency stamps, and the evidence and event ids of MOD-003 alerts,
which the page leaves open. Spread and flow metrics are matched per key and window, basis metrics per
pair and window, whale-impact rows per whale alert and horizon; DQ counts are summed per key, window
and reason (stream rules) or per key and reason (quarantine), since rows are additive.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import polars as pl

from coattail.run.outputs import RECORD_REASONS, RunOutputs
from coattail.validate.alert_view import alert_view, parse_evidence

REL_TOL: Final = 1e-9
ABS_TOL: Final = 1e-9
_EXACT_FIELDS: Final = (
    "detector",
    "kind",
    "exchange",
    "symbol",
    "ts_event",
    "window_start",
    "window_end",
    "severity",
)
_FLOAT_FIELDS: Final = ("value", "threshold")
_OPEN_EVIDENCE: Final = frozenset({"MOD-003"})
"""Detectors whose evidence and event ids docs/DETECTORS.md does not pin down."""
_INSTRUMENT_WINDOW: Final = ["exchange", "symbol", "window_start"]
_SPREAD_FIELDS: Final = ("min_bps", "mean_bps", "max_bps", "last_bps", "count", "window_end")
_FLOW_FIELDS: Final = (
    "buy_notional_usd", "sell_notional_usd", "notional_usd", "imbalance", "trades", "window_end"
)
_BASIS_KEY: Final = ["asset", "exchange_a", "symbol_a", "exchange_b", "symbol_b", "window_start"]
_BASIS_FIELDS: Final = ("price_a", "price_b", "carried_a", "carried_b", "basis_bps", "window_end")
_IMPACT_KEY: Final = ["whale_alert_id", "horizon_s"]
_IMPACT_FIELDS: Final = (
    "exchange", "symbol", "whale_detector", "side", "ts_whale", "p0", "price", "impact_bps", "ts_horizon"
)
_ALPHA_KEY: Final = ["detector", "exchange", "symbol", "horizon_s", "alert_id"]
_ALPHA_FIELDS: Final = ("asset", "decision_ts", "direction", "forward_bps", "count", "mean_bps", "std_bps",
                        "hit_rate", "t_stat", "ts_event")
_SIGNAL_FIELDS: Final = ("asset", "detector", "exchange", "symbol", "source_alert_id", "direction",
                         "horizon_s", "price", "count", "mean_bps", "hit_rate", "t_stat", "ts_event")


@dataclass(frozen=True)
class Agreement:
    """Every difference between the pipeline and the reference on one input."""

    pipeline_alerts: int
    reference_alerts: int
    only_pipeline: list[dict[str, Any]] = field(default_factory=list)
    only_reference: list[dict[str, Any]] = field(default_factory=list)
    alert_differences: list[dict[str, Any]] = field(default_factory=list)
    spread_differences: list[dict[str, Any]] = field(default_factory=list)
    flow_differences: list[dict[str, Any]] = field(default_factory=list)
    basis_differences: list[dict[str, Any]] = field(default_factory=list)
    impact_differences: list[dict[str, Any]] = field(default_factory=list)
    alpha_differences: list[dict[str, Any]] = field(default_factory=list)
    signal_differences: list[dict[str, Any]] = field(default_factory=list)
    dq_differences: list[dict[str, Any]] = field(default_factory=list)
    records: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the two agree on everything compared."""
        return not (
            self.only_pipeline
            or self.only_reference
            or self.alert_differences
            or self.spread_differences
            or self.flow_differences
            or self.basis_differences
            or self.impact_differences
            or self.alpha_differences
            or self.signal_differences
            or self.dq_differences
        )

    @property
    def difference_count(self) -> int:
        """How many differences were found."""
        return sum(
            len(x)
            for x in (
                self.only_pipeline,
                self.only_reference,
                self.alert_differences,
                self.spread_differences,
                self.flow_differences,
                self.basis_differences,
                self.impact_differences,
                self.alpha_differences,
                self.signal_differences,
                self.dq_differences,
            )
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {**asdict(self), "ok": self.ok, "differences": self.difference_count}


def compare_with_reference(pipeline: RunOutputs, reference: RunOutputs) -> Agreement:
    """Compare two runs' outputs (the first the pipeline's, the second the reference's)."""
    ours = {a["alert_id"]: a for a in pipeline.alert_rows()}
    ref = {a["alert_id"]: a for a in reference.alert_rows()}
    differences = []
    for aid in sorted(ours.keys() & ref.keys()):
        fields = alert_field_differences(ours[aid], ref[aid])
        if fields:
            differences.append(
                {
                    "alert_id": aid,
                    "detector": ref[aid]["detector"],
                    "symbol": ref[aid]["symbol"],
                    "fields": fields,
                }
            )
    return Agreement(
        pipeline_alerts=len(ours),
        reference_alerts=len(ref),
        only_pipeline=[alert_view(ours[a]) for a in sorted(ours.keys() - ref.keys())],
        only_reference=[alert_view(ref[a]) for a in sorted(ref.keys() - ours.keys())],
        alert_differences=differences,
        spread_differences=_metric_differences(
            pipeline.spread_metrics, reference.spread_metrics, _INSTRUMENT_WINDOW, _SPREAD_FIELDS
        ),
        flow_differences=_metric_differences(
            pipeline.flow_metrics, reference.flow_metrics, _INSTRUMENT_WINDOW, _FLOW_FIELDS
        ),
        basis_differences=_metric_differences(
            pipeline.basis_metrics, reference.basis_metrics, _BASIS_KEY, _BASIS_FIELDS
        ),
        impact_differences=_metric_differences(
            pipeline.whale_impact, reference.whale_impact, _IMPACT_KEY, _IMPACT_FIELDS
        ),
        alpha_differences=_metric_differences(
            pipeline.alpha_scores, reference.alpha_scores, _ALPHA_KEY, _ALPHA_FIELDS
        ),
        signal_differences=_metric_differences(
            pipeline.signals, reference.signals, ["alert_id"], _SIGNAL_FIELDS
        ),
        dq_differences=_dq_differences(pipeline.dq, reference.dq),
        records={
            "pipeline": {"in": pipeline.records_in, "valid": pipeline.valid},
            "reference": {"in": reference.records_in, "valid": reference.valid},
        },
    )


def alert_field_differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Fields in which two alerts with the same id differ: ``{field: {"pipeline": x, "reference": y}}``."""
    out: dict[str, dict[str, Any]] = {}
    for name in _EXACT_FIELDS:
        if a[name] != b[name]:
            out[name] = {"pipeline": a[name], "reference": b[name]}
    for name in _FLOAT_FIELDS:
        if not close(a[name], b[name]):
            out[name] = {"pipeline": a[name], "reference": b[name]}
    if b["detector"] not in _OPEN_EVIDENCE:
        ea, eb = parse_evidence(a["evidence"]), parse_evidence(b["evidence"])
        if not same_json(ea, eb):
            out["evidence"] = {"pipeline": ea, "reference": eb}
        if list(a["event_ids"]) != list(b["event_ids"]):
            out["event_ids"] = {"pipeline": list(a["event_ids"]), "reference": list(b["event_ids"])}
    return out


def close(x: Any, y: Any) -> bool:
    """Equal, or floats within the comparison tolerance."""
    if isinstance(x, float) or isinstance(y, float):
        if x is None or y is None:
            return x is y
        return math.isclose(float(x), float(y), rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return bool(x == y)


def same_json(x: Any, y: Any) -> bool:
    """Structural equality of parsed JSON with float tolerance (1 and 1.0 are equal)."""
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(same_json(x[k], y[k]) for k in x)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(same_json(i, j) for i, j in zip(x, y, strict=True))
    numbers = (int, float)
    if (
        isinstance(x, numbers)
        and isinstance(y, numbers)
        and not isinstance(x, bool)
        and not isinstance(y, bool)
    ):
        return math.isclose(float(x), float(y), rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return bool(x == y)


def _metric_differences(
    ours: pl.DataFrame, ref: pl.DataFrame, key: list[str], compared: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Metric rows matched by ``key``: rows on one side only, and ``compared`` columns that differ (the
    last of them is never null, so it tells which side holds a row)."""
    present = compared[-1]
    joined = ours.join(ref, on=key, how="full", suffix="_ref", coalesce=True)
    out = []
    for row in joined.sort(key).iter_rows(named=True):
        if row[present] is None or row[f"{present}_ref"] is None:
            side = "pipeline" if row[present] is not None else "reference"
            out.append({**{k: row[k] for k in key}, "only_in": side})
            continue
        fields = {
            c: {"pipeline": row[c], "reference": row[f"{c}_ref"]}
            for c in compared
            if not close(row[c], row[f"{c}_ref"])
        }
        if fields:
            out.append({**{k: row[k] for k in key}, "fields": fields})
    return out


def _dq_totals(dq: pl.DataFrame) -> pl.DataFrame:
    record = pl.col("reason").is_in(list(RECORD_REASONS))
    keyed = dq.with_columns(
        pl.when(record).then(None).otherwise(pl.col("window_start")).alias("window_start")
    )
    return keyed.group_by(["exchange", "symbol", "window_start", "reason"]).agg(pl.col("count").sum())


def _dq_differences(ours: pl.DataFrame, ref: pl.DataFrame) -> list[dict[str, Any]]:
    key = ["exchange", "symbol", "window_start", "reason"]
    joined = _dq_totals(ours).join(
        _dq_totals(ref), on=key, how="full", suffix="_ref", coalesce=True, nulls_equal=True
    )
    joined = joined.with_columns(pl.col("count").fill_null(0), pl.col("count_ref").fill_null(0))
    rows = joined.filter(pl.col("count") != pl.col("count_ref")).sort(key, nulls_last=True)
    return [
        {**{k: r[k] for k in key}, "pipeline": r["count"], "reference": r["count_ref"]}
        for r in rows.iter_rows(named=True)
    ]
