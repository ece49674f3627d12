"""MOD-007 sliced-whale, reference version (docs/DETECTORS.md, MOD-007): a plain walk over each key's
valid events in arrival order, one event at a time, as the page states the rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from coattail.reference.alerts import MAX_EVENT_IDS, alert_row
from coattail.reference.stream import KEY, counted
from core.events import event_id
from pipeline.alerts import evidence_json

if TYPE_CHECKING:
    # the settings' types only: the reference never runs detector code
    from pipeline.detectors.sliced_whale import SlicedWhaleSettings
    from pipeline.detectors.whale import WhaleSettings

DETECTOR = "MOD-007"


@dataclass
class _Run:
    side: str
    trades: list[dict[str, Any]] = field(default_factory=list)


def sliced_alerts(
    annotated: pl.DataFrame, settings: SlicedWhaleSettings, whale: WhaleSettings
) -> list[dict[str, Any]]:
    """Alerts of every closed run of same-side counted trades that adds up to a whale, each with the
    ``arrival`` of the event that closed the run (its decision event, for MOD-008)."""
    gap = settings.max_gap_ms * 1_000
    alerts: list[dict[str, Any]] = []
    walk = annotated.sort("arrival").with_columns(counted().alias("counted"))
    for (exchange, symbol), events in walk.group_by(list(KEY), maintain_order=True):
        t1 = whale.thresholds_usd.get(str(symbol), whale.default_threshold_usd)
        run: _Run | None = None
        clock: int | None = None
        for e in events.iter_rows(named=True):
            clock = e["ts_event"] if clock is None else max(clock, e["ts_event"])
            if run is not None and clock > run.trades[-1]["ts_event"] + gap:
                alerts += _fire(run, str(exchange), str(symbol), t1, settings, whale, e["arrival"])
                run = None
            if not e["counted"]:
                continue
            if run is not None:
                step = max(0, e["ts_event"] - run.trades[-1]["ts_event"])
                if e["side"] != run.side or step > gap:
                    alerts += _fire(run, str(exchange), str(symbol), t1, settings, whale, e["arrival"])
                    run = None
            if run is None:
                run = _Run(e["side"])
            run.trades.append(e)
        # a run still open at the end of the input is not evaluated
    return alerts


def _fire(
    run: _Run, exchange: str, symbol: str, t1: float, settings: SlicedWhaleSettings, whale: WhaleSettings,
    arrival: int,
) -> list[dict[str, Any]]:
    notionals = [t["notional_usd"] for t in run.trades]
    total = sum(notionals)
    threshold = settings.threshold_fraction * t1
    if len(run.trades) < settings.min_trades or total < threshold or max(notionals) >= t1:
        return []
    levels = sorted(whale.severity_multiples.items(), key=lambda kv: kv[1])
    reached = [name for name, m in levels if total >= m * t1]
    first, last = run.trades[0], run.trades[-1]
    evidence = {
        "trades": len(run.trades),
        "side": run.side,
        "first_ts": first["ts_event"],
        "last_ts": last["ts_event"],
        "vwap": sum(t["price"] * t["qty"] for t in run.trades) / sum(t["qty"] for t in run.trades),
        "largest_usd": max(notionals),
        "notional_usd": total,
    }
    return [
        {**alert_row(
            detector=DETECTOR,
            kind="sliced_whale",
            exchange=exchange,
            symbol=symbol,
            key=first["trade_id"],
            ts_event=last["ts_event"],
            severity=reached[-1] if reached else levels[0][0],
            value=total,
            threshold=threshold,
            evidence=evidence_json(evidence),
            event_ids=[
                event_id("trade", exchange, symbol, t["trade_id"]) for t in run.trades[:MAX_EVENT_IDS]
            ],
        ), "arrival": arrival}
    ]
