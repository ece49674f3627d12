"""MOD-008 whale-impact, reference version (docs/DETECTORS.md, MOD-008): each key's events walked in
arrival order; a whale is known at its alert's decision event and each horizon is evaluated at the first
event that takes the clock past ``t + h``."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from coattail.reference.alerts import alert_row
from coattail.reference.asof import NOT_YET, PriceSteps
from coattail.reference.stream import KEY, US_PER_S
from coattail.run.outputs import IMPACT_COLUMNS
from pipeline.alerts import evidence_json

if TYPE_CHECKING:
    # the settings' type only: the reference never runs detector code
    from pipeline.detectors.whale_impact import WhaleImpactSettings

DETECTOR: Final = "MOD-008"
_P0: Final = {"MOD-001": "price", "MOD-007": "vwap"}


def severity(value: float, threshold: float) -> str:
    """``low``, ``medium`` from 2x, ``high`` from 4x the threshold, by ``|value|``."""
    return "high" if abs(value) >= 4 * threshold else "medium" if abs(value) >= 2 * threshold else "low"


def impact_outputs(
    annotated: pl.DataFrame,
    whales: list[dict[str, Any]],
    settings: WhaleImpactSettings,
    watermark_seconds: int,
) -> tuple[list[dict[str, Any]], pl.DataFrame]:
    """MOD-008's alerts and ``whale_impact`` rows, from the MOD-001 and MOD-007 alert rows ``whales``
    (each with the ``arrival`` of its decision event)."""
    retention = (max(settings.horizons_s) + watermark_seconds) * US_PER_S
    known: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for w in whales:
        known[w["arrival"]].append(w)
    alerts: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    walk = annotated.sort("arrival")
    for _, events in walk.group_by(list(KEY), maintain_order=True):
        steps = PriceSteps()
        waiting: list[tuple[dict[str, Any], int]] = []  # (whale, horizon index), in the order known
        fired: set[str] = set()
        for e in events.iter_rows(named=True):
            before = steps.clock
            trade = e["kind"] == "trade"
            steps.arrive(e["ts_event"], trade and not e["late"] and not e["duplicate"], e["price"])
            for w in sorted(known.get(e["arrival"], []), key=lambda a: a["alert_id"]):
                waiting += [({**w, "asked_at": before}, i) for i in range(len(settings.horizons_s))]
            still = []
            for w, i in waiting:
                h = settings.horizons_s[i]
                x = w["ts_event"] + h * US_PER_S
                asked = w["asked_at"] if w["asked_at"] is not None else x
                price = steps.as_of(x, asked, retention)
                if price is NOT_YET:
                    still.append((w, i))
                elif price is not None:
                    alerts += _evaluate(w, h, x, float(price), settings, fired, rows)  # type: ignore[arg-type]
            waiting = still
    return alerts, pl.DataFrame(rows, schema=IMPACT_COLUMNS)


def _evaluate(
    whale: dict[str, Any],
    h: int,
    x: int,
    price: float,
    settings: WhaleImpactSettings,
    fired: set[str],
    rows: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    evidence = json.loads(whale["evidence"])
    side = evidence["side"]
    p0 = float(evidence[_P0[whale["detector"]]])
    impact = (1.0 if side == "buy" else -1.0) * (price - p0) / p0 * 1e4
    rows.append(
        {
            "exchange": whale["exchange"],
            "symbol": whale["symbol"],
            "whale_alert_id": whale["alert_id"],
            "whale_detector": whale["detector"],
            "side": side,
            "horizon_s": h,
            "ts_whale": whale["ts_event"],
            "ts_horizon": x,
            "p0": p0,
            "price": price,
            "impact_bps": impact,
        }
    )
    if whale["alert_id"] in fired or abs(impact) < settings.threshold_bps:
        return []
    fired.add(whale["alert_id"])
    found = {
        "horizon_s": h,
        "p0": p0,
        "price": price,
        "side": side,
        "whale_alert_id": whale["alert_id"],
        "whale_detector": whale["detector"],
    }
    return [
        alert_row(
            detector=DETECTOR,
            kind="price_impact",
            exchange=whale["exchange"],
            symbol=whale["symbol"],
            key=whale["alert_id"],
            ts_event=x,
            severity=severity(impact, settings.threshold_bps),
            value=impact,
            threshold=settings.threshold_bps,
            evidence=evidence_json(found),
            event_ids=list(whale["event_ids"]),
        )
    ]
