"""Labels against a run's outputs: which labels were hit, precision and recall per detector.

- ``expect: alert``: hit when an alert of the label's detector on the same exchange and symbol covers
  the label's span ``[start_us, end_us]`` (its ``ts_event``, or its window, overlaps the span); when the
  label names a scenario that is also an alert kind (``whale`` -> ``whale_trade``, ``volume_spike``,
  ``spread_blowout``, ``crossed_book``, ``one_sided`` -> ``flow_imbalance``, ``sliced_whale``,
  ``basis_dislocation`` -> ``basis_divergence``, ``exchange_inflow``, ``exchange_outflow``,
  ``whale_transfer``) the alert must be of that kind.
- ``expect: dq``: hit when the reason's count reaches the label's ``count``: stream rules summed over the
  windows overlapping the span for the label's key; record (quarantine) rules over the whole run for the
  label's key, or for unknown keys (a corrupt payload names no symbol).
- ``expect: none``: recorded for the report, not checked.

An alert of detector D is a true positive when it hits at least one ``alert`` label of D. An alert of
D that hits no label of D but falls in the span of a label that ``tolerates`` D (a whale trade in a thin
minute may also make it a volume spike) is *tolerated*: neither a true nor a false positive, so it is
left out of D's precision and listed apart. The others are listed as unexpected, with their evidence.
Precision of D = true positives / alerts of D; recall of D = hit labels / labels of D. Either is
``None`` when its denominator is 0.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import polars as pl

from coattail.run.outputs import RECORD_REASONS, RunOutputs
from coattail.validate.alert_view import alert_view
from core.labels import Label

LABEL_ALERT_KIND: Final = {
    "whale": "whale_trade",
    "whale_trade": "whale_trade",
    "volume_spike": "volume_spike",
    "spread_blowout": "spread_blowout",
    "crossed_book": "crossed_book",
    "one_sided": "flow_imbalance",
    "sliced_whale": "sliced_whale",
    "basis_dislocation": "basis_divergence",
    "exchange_inflow": "exchange_inflow",
    "exchange_outflow": "exchange_outflow",
    "whale_transfer": "whale_transfer",
}


@dataclass(frozen=True)
class LabelResult:
    """One label and what matched it."""

    label: dict[str, Any]
    hit: bool
    matched_alerts: list[str] = field(default_factory=list)
    found_count: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class DetectorScore:
    """Precision and recall of one detector."""

    detector: str
    labels: int
    hit: int
    alerts: int
    true_positives: int
    precision: float | None
    recall: float | None


@dataclass(frozen=True)
class LabelValidation:
    """Every label's result, the scores and the unexpected alerts."""

    results: list[LabelResult]
    scores: list[DetectorScore]
    unexpected: list[dict[str, Any]]
    unexpected_dq: list[dict[str, Any]]
    tolerated: list[str] = field(default_factory=list)

    @property
    def misses(self) -> list[LabelResult]:
        """Labels that expected something and did not get it."""
        return [r for r in self.results if not r.hit]

    @property
    def ok(self) -> bool:
        """True when every checked label was hit."""
        return not self.misses

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "ok": self.ok,
            "labels": len(self.results),
            "misses": len(self.misses),
            "results": [asdict(r) for r in self.results],
            "scores": [asdict(s) for s in self.scores],
            "unexpected_alerts": self.unexpected,
            "unexpected_dq": self.unexpected_dq,
            "tolerated_alerts": self.tolerated,
        }


def validate_labels(
    labels: Sequence[Label], outputs: RunOutputs, *, dq_window_seconds: int
) -> LabelValidation:
    """Match every label against ``outputs`` (see the module docstring for the rules)."""
    alerts = outputs.alert_rows()
    results: list[LabelResult] = []
    matched_by: dict[str, set[int]] = defaultdict(set)
    for index, label in enumerate(labels):
        if label.expect == "alert":
            ids = [a["alert_id"] for a in alerts if _alert_hits(a, label)]
            for a in ids:
                matched_by[a].add(index)
            results.append(
                LabelResult(
                    label=label.model_dump(),
                    hit=bool(ids),
                    matched_alerts=ids,
                    detail=""
                    if ids
                    else f"no {label.detector} alert for {label.exchange}:{label.symbol} in span",
                )
            )
        elif label.expect == "dq":
            found = _dq_found(label, outputs.dq, dq_window_seconds)
            need = label.count if label.count is not None else 1
            results.append(
                LabelResult(
                    label=label.model_dump(),
                    hit=found >= need,
                    found_count=found,
                    detail="" if found >= need else f"{label.reason}: counted {found}, expected {need}",
                )
            )
    tolerated = {
        a["alert_id"]
        for a in alerts
        if a["alert_id"] not in matched_by
        and any(a["detector"] in lb.tolerates and _in_span(a, lb) for lb in labels)
    }
    judged = [a for a in alerts if a["alert_id"] not in tolerated]
    scores = _scores(labels, results, judged, matched_by)
    unexpected = [alert_view(a) for a in judged if a["alert_id"] not in matched_by]
    return LabelValidation(
        results, scores, unexpected, _unexpected_dq(labels, outputs.dq), sorted(tolerated)
    )


def _alert_hits(alert: dict[str, Any], label: Label) -> bool:
    if (alert["detector"], alert["exchange"], alert["symbol"]) != (
        label.detector,
        label.exchange,
        label.symbol,
    ):
        return False
    kind = LABEL_ALERT_KIND.get(label.kind)
    if kind is not None and alert["kind"] != kind:
        return False
    return _in_span(alert, label)


def _in_span(alert: dict[str, Any], label: Label) -> bool:
    """Same key, and the alert's time (or window) overlaps the label's span."""
    if (alert["exchange"], alert["symbol"]) != (label.exchange, label.symbol):
        return False
    start = alert["window_start"] if alert["window_start"] is not None else alert["ts_event"]
    end = alert["window_end"] if alert["window_end"] is not None else alert["ts_event"]
    if alert["window_end"] is not None:
        return bool(start <= label.end_us and label.start_us < end)
    return bool(start <= label.end_us and label.start_us <= end)


def _dq_found(label: Label, dq: pl.DataFrame, window_seconds: int) -> int:
    rows = dq.filter(pl.col("reason") == label.reason)
    if label.reason in RECORD_REASONS:
        keys = {(label.exchange, label.symbol), ("", "")}
        rows = rows.filter(
            pl.any_horizontal([(pl.col("exchange") == e) & (pl.col("symbol") == s) for e, s in sorted(keys)])
        )
    else:
        width = window_seconds * 1_000_000
        rows = rows.filter(
            (pl.col("exchange") == label.exchange)
            & (pl.col("symbol") == label.symbol)
            & (pl.col("window_start") <= label.end_us)
            & (pl.col("window_start") + width > label.start_us)
        )
    return int(rows.get_column("count").sum()) if rows.height else 0


def _scores(
    labels: Sequence[Label],
    results: list[LabelResult],
    alerts: list[dict[str, Any]],
    matched_by: dict[str, set[int]],
) -> list[DetectorScore]:
    detectors = sorted(
        {lb.detector for lb in labels if lb.expect != "none"} | {a["detector"] for a in alerts}
    )
    checked = [(lb, r) for lb, r in zip([lb for lb in labels if lb.expect != "none"], results, strict=True)]
    scores = []
    for d in detectors:
        mine = [r for lb, r in checked if lb.detector == d]
        hit = sum(r.hit for r in mine)
        d_alerts = [a for a in alerts if a["detector"] == d]
        tp = sum(1 for a in d_alerts if a["alert_id"] in matched_by)
        # Precision needs ground truth: a tape with labels claims to list every scenario it injected.
        precision = tp / len(d_alerts) if d_alerts and labels else None
        scores.append(
            DetectorScore(
                detector=d,
                labels=len(mine),
                hit=hit,
                alerts=len(d_alerts),
                true_positives=tp,
                precision=precision,
                recall=hit / len(mine) if mine else None,
            )
        )
    return scores


def _unexpected_dq(labels: Sequence[Label], dq: pl.DataFrame) -> list[dict[str, Any]]:
    """DQ totals per reason and key that no label asked for (natural data-quality events, or a bug)."""
    asked = {(lb.reason, lb.exchange, lb.symbol) for lb in labels if lb.expect == "dq"}
    asked_reasons = {lb.reason for lb in labels if lb.expect == "dq"}
    if dq.is_empty():
        return []
    totals = (
        dq.group_by(["reason", "exchange", "symbol"])
        .agg(pl.col("count").sum())
        .sort(["reason", "exchange", "symbol"])
    )
    out = []
    for r in totals.iter_rows(named=True):
        key = (r["reason"], r["exchange"], r["symbol"])
        unknown_key_ok = r["exchange"] == "" and r["reason"] in asked_reasons
        if key not in asked and not unknown_key_ok:
            out.append(r)
    return out
