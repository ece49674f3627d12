"""MOD-009 momentum-burst, reference version (docs/DETECTORS.md, MOD-009): each key's events walked in
arrival order, the counted trades so far kept sorted by time to sum any span directly."""

from __future__ import annotations

from bisect import bisect_right, insort
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from coattail.reference.alerts import alert_row
from coattail.reference.asof import PriceSteps
from coattail.reference.stream import KEY, US_PER_S, counted
from coattail.reference.whale_impact import severity
from core.events import event_id
from pipeline.alerts import evidence_json

if TYPE_CHECKING:
    # the settings' type only: the reference never runs detector code
    from pipeline.detectors.momentum import MomentumSettings

DETECTOR: Final = "MOD-009"


def momentum_alerts(
    annotated: pl.DataFrame, settings: MomentumSettings, watermark_seconds: int
) -> list[dict[str, Any]]:
    """One alert at the first trade of every burst."""
    lookback = settings.lookback_s * US_PER_S
    retention = lookback + watermark_seconds * US_PER_S
    threshold = settings.threshold_bps
    alerts: list[dict[str, Any]] = []
    walk = annotated.sort("arrival").with_columns(counted().alias("counted"))
    for (exchange, symbol), events in walk.group_by(list(KEY), maintain_order=True):
        steps = PriceSteps()
        seen: list[tuple[int, int, float]] = []  # (ts, arrival, notional) of counted trades, by time
        burst = 0
        for e in events.iter_rows(named=True):
            trade = e["kind"] == "trade"
            steps.arrive(e["ts_event"], trade and not e["late"] and not e["duplicate"], e["price"])
            if not e["counted"]:
                continue
            t, p = e["ts_event"], e["price"]
            insort(seen, (t, e["arrival"], e["notional_usd"]))
            assert steps.clock is not None
            p_ref = steps.as_of(t - lookback, steps.clock, retention)
            if p_ref is None:
                continue
            move = (p - p_ref) / p_ref * 1e4
            lo = bisect_right(seen, (t - lookback, 2**62, 0.0))
            hi = bisect_right(seen, (t, 2**62, 0.0))
            span = [v for _, _, v in seen[lo:hi]]
            notional = sum(span)
            if burst and (abs(move) < threshold / 2 or move * burst < 0):
                burst = 0
            if burst or abs(move) < threshold or notional < settings.min_notional_usd:
                continue
            burst = 1 if move > 0 else -1
            evidence = {
                "p_ref": p_ref,
                "price": p,
                "notional_usd": notional,
                "trades": len(span),
                "direction": "up" if move > 0 else "down",
            }
            alerts.append(
                alert_row(
                    detector=DETECTOR,
                    kind="momentum_burst",
                    exchange=str(exchange),
                    symbol=str(symbol),
                    key=e["trade_id"],
                    ts_event=t,
                    severity=severity(move, threshold),
                    value=move,
                    threshold=threshold,
                    evidence=evidence_json(evidence),
                    event_ids=[event_id("trade", str(exchange), str(symbol), e["trade_id"])],
                    ts_sent=e["ts_sent"],
                )
            )
    return alerts
