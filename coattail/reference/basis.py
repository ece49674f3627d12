"""MOD-005 cross-exchange-basis, reference version (docs/DETECTORS.md, MOD-005), over a whole input.

Per leg: the last counted trade price of each window and the clock that closed each window. The
release rule at the end of the input keeps, per leg, the windows closed at a clock below the lowest
final clock of the asset's participants; the pair evaluates every window up to the first leg to run out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from coattail.reference.alerts import alert_row
from coattail.reference.stream import KEY, US_PER_S, window_start
from coattail.run.outputs import BASIS_COLUMNS, DQ_COLUMNS
from pipeline.alerts import evidence_json
from pipeline.config import Config

if TYPE_CHECKING:
    # the settings' type only: the reference never runs detector code
    from pipeline.detectors.basis import BasisSettings

DETECTOR = "MOD-005"


@dataclass
class Leg:
    """One instrument's published windows: ``first`` window start, ``last`` released window start,
    the price of each traded window, and the clock that closed each window."""

    first: int
    last: int
    prices: dict[int, float]
    closed_by: dict[int, int]


def basis_outputs(
    annotated: pl.DataFrame, config: Config, settings: BasisSettings
) -> tuple[list[dict[str, Any]], pl.DataFrame, pl.DataFrame]:
    """Alerts, ``basis_metrics`` rows and ``BASIS_STALLED`` DQ rows of every configured pair."""
    width = settings.window_seconds * US_PER_S
    delay = config.spark.watermark_seconds * US_PER_S
    clocks = annotated.sort("arrival").with_columns(
        pl.col("ts_event").cum_max().over(list(KEY)).alias("clock")
    )
    ends = clocks.group_by(list(KEY)).agg(pl.col("clock").max())
    final = {(r["exchange"], r["symbol"]): r["clock"] for r in ends.iter_rows(named=True)}
    alerts: list[dict[str, Any]] = []
    metrics: list[dict[str, Any]] = []
    stalls: list[dict[str, Any]] = []
    for a, b in settings.pairs:
        ka, kb = _key(a), _key(b)
        if ka not in config.active_instruments or kb not in config.active_instruments:
            continue  # a pair is evaluated only when both legs are participants
        asset = config.instruments.asset_of(*ka) or ""
        participants = [k for k in config.active_instruments if config.instruments.asset_of(*k) == asset]
        if any(k not in final for k in participants):
            continue  # a participant that never had a valid event holds the asset back
        floor = min(final[k] for k in participants)
        legs = [_leg(clocks, k, width, delay, floor) for k in (ka, kb)]
        if legs[0] is None or legs[1] is None:
            continue
        _pair(asset, (a, b), legs[0], legs[1], settings, alerts, metrics, stalls)
    return alerts, pl.DataFrame(metrics, schema=BASIS_COLUMNS), pl.DataFrame(stalls, schema=DQ_COLUMNS)


def _key(name: str) -> tuple[str, str]:
    exchange, _, symbol = name.partition(":")
    return exchange, symbol


def _leg(clocks: pl.DataFrame, key: tuple[str, str], width: int, delay: int, floor: int) -> Leg | None:
    events = clocks.filter((pl.col("exchange") == key[0]) & (pl.col("symbol") == key[1]))
    counted = events.filter(
        (pl.col("kind") == "trade")
        & ~pl.col("late")
        & ~pl.col("duplicate")
        & pl.col("notional_usd").is_not_null()
    ).with_columns(window_start(pl.col("ts_event"), width // US_PER_S).alias("w"))
    if events.is_empty():
        return None
    last_price = counted.group_by("w").agg(pl.col("price").sort_by("arrival").last())
    prices = dict(zip(last_price["w"].to_list(), last_price["price"].to_list(), strict=True))
    # windows start at the first-arrived event's, or earlier for a counted trade before it
    opening = int(events.sort("arrival")["ts_event"][0]) // width * width
    first = min([opening, *prices])
    # the clock's values: a window closes at the first one >= its end + delay
    steps = np.unique(events["clock"].to_numpy())
    starts = np.arange(first, int(steps[-1]) - delay - width + 1, width, dtype=np.int64)
    closing = steps[np.searchsorted(steps, starts + width + delay)] if len(starts) else np.empty(0, np.int64)
    released = starts[closing < floor]
    if len(released) == 0:
        return None
    return Leg(first, int(released[-1]), prices, dict(zip(starts.tolist(), closing.tolist(), strict=True)))


def _pair(
    asset: str, pair: tuple[str, str], la: Leg, lb: Leg, s: BasisSettings,
    alerts: list[dict[str, Any]], metrics: list[dict[str, Any]], stalls: list[dict[str, Any]],
) -> None:
    width = s.window_seconds * US_PER_S
    exchanges = "|".join(_key(p)[0] for p in pair)
    last: list[tuple[int, float] | None] = [None, None]
    stalled: list[int | None] = [None, None]
    run: list[float] = []
    run_first, run_sign = 0, 0
    for w in range(min(la.first, lb.first), min(la.last, lb.last) + 1, width):
        prices: list[float | None] = []
        traded = []
        for i, leg in enumerate((la, lb)):
            price = leg.prices.get(w)
            traded.append(price is not None)
            if price is not None:
                last[i] = (w, price)
            held = last[i]
            fresh = held is not None and w - held[0] <= s.max_carry_windows * width
            prices.append(held[1] if held is not None and fresh else None)
        if w >= la.first and w >= lb.first:
            ca, cb = la.closed_by[w], lb.closed_by[w]
            for i, (mine, other) in enumerate(((ca, cb), (cb, ca))):
                if mine - other >= s.stall_seconds * US_PER_S and stalled[i] != mine:
                    stalled[i] = mine
                    ex, sym = _key(pair[i])
                    stalls.append({"exchange": ex, "symbol": sym, "window_start": w,
                                   "reason": "BASIS_STALLED", "count": 1})
        pa_, pb_ = prices
        if not any(traded) or pa_ is None or pb_ is None:
            run = []
            continue
        bps = (pa_ - pb_) / ((pa_ + pb_) / 2) * 1e4
        (ea, _, sa), (eb, _, sb) = (p.partition(":") for p in pair)
        metrics.append({"asset": asset, "exchange_a": ea, "symbol_a": sa, "exchange_b": eb, "symbol_b": sb,
                        "window_start": w, "window_end": w + width, "price_a": pa_, "price_b": pb_,
                        "carried_a": not traded[0], "carried_b": not traded[1], "basis_bps": bps})
        sign = 1 if bps > 0 else -1
        if abs(bps) < s.threshold_bps:
            run = []
            continue
        if not run or sign != run_sign:
            run, run_first, run_sign = [], w, sign
        run.append(bps)
        if len(run) != s.min_windows:
            continue
        size = abs(bps)
        level = "high" if size >= 4 * s.threshold_bps else "medium" if size >= 2 * s.threshold_bps else "low"
        alerts.append(alert_row(
            detector=DETECTOR, kind="basis_divergence", exchange=exchanges, symbol=asset, key=run_first,
            ts_event=w + width, window_start=run_first, window_end=w + width, severity=level, value=bps,
            threshold=s.threshold_bps,
            evidence=evidence_json({"a": pair[0], "b": pair[1], "price_a": pa_, "price_b": pb_,
                                    "basis_bps": list(run)}),
            event_ids=[],
        ))
