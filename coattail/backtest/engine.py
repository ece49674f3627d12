"""Paper execution of follow signals: orders as Hyperliquid actions, filled against the replayed market.

Per signal (in decision-time order): its open trades of the other direction on the asset are closed at
the decision (an opposite signal exits), then an entry of ``size_usd`` is sent ``latency_ms`` after the
decision unless the asset's open exposure would pass ``max_position_usd``; every trade exits
``horizon_s`` after its decision (order sent ``latency_ms`` later). Each order is a Hyperliquid IOC
limit order (``coattail.backtest.hyperliquid``) filled by ``Market.fill``; an order the rules reject is
counted under its rule and not traded; an exit that cannot fill is marked at the reference price when
it was sent (``exit_reason = "marked"``). Fees are ``fees_bps`` of each fill's notional.

The random baseline trades the same decision times, sizes and horizons with directions drawn from
``seed``: what a user compares the edge with.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import polars as pl

from coattail.backtest.hyperliquid import OrderRejected, market_order, order_action
from coattail.backtest.market import Market
from core.errors import CoattailError
from pipeline.instruments import Instrument

US: Final = 1_000_000
DAY_US: Final = 86_400 * US
SHARPE_MIN_DAYS: Final = 3
"""A Sharpe ratio from fewer daily returns says nothing; below this many days it is left out."""
SIGNAL_COLUMNS: Final = {"alert_id": pl.Utf8, "asset": pl.Utf8, "ts_event": pl.Int64, "direction": pl.Int64,
                         "horizon_s": pl.Int64}
TRADE_COLUMNS: Final = ("signal_id", "asset", "direction", "decision_ts", "entry_ts", "entry_px", "exit_ts",
                        "exit_px", "qty", "fees_usd", "pnl_usd", "exit_reason")


@dataclass(frozen=True)
class BacktestParams:
    """The knobs of ``coattail backtest``."""

    fees_bps: float = 4.5
    latency_ms: int = 50
    size_usd: float = 10_000.0
    max_position_usd: float = 50_000.0
    slippage_bps: float = 50.0
    seed: int = 7


@dataclass
class Venue:
    """Where one asset's orders go (the Hyperliquid instrument) and what they fill against."""

    instrument: Instrument
    market: Market


@dataclass
class BacktestResult:
    """Fills, closed trades, the equity curve and the figures of one strategy."""

    fills: pl.DataFrame
    trades: pl.DataFrame
    equity: pl.DataFrame
    summary: dict[str, Any]
    actions: list[dict[str, Any]] = field(default_factory=list)
    """The first order actions built (a sample of what a live engine would receive)."""


@dataclass
class _Open:
    signal_id: str
    asset: str
    direction: int
    decision_ts: int
    exit_at: int
    entry_ts: int
    entry_px: float
    qty: float
    fees: float
    closed: bool = False


def random_directions(signals: pl.DataFrame, seed: int) -> pl.DataFrame:
    """The same signals with directions drawn uniformly from {-1, +1} (``seed``)."""
    rng = np.random.default_rng(seed)
    return signals.with_columns(pl.Series("direction", rng.choice([-1, 1], size=signals.height), pl.Int64))


def run_backtest(signals: pl.DataFrame, venues: dict[str, Venue], params: BacktestParams) -> BacktestResult:
    """Trade ``signals`` (``SIGNAL_COLUMNS``) on ``venues`` (by asset); see the module docstring."""
    missing = [c for c in SIGNAL_COLUMNS if c not in signals.columns]
    if missing:
        raise CoattailError(f"signals lack the columns {missing}; a run's signals table has them")
    signals = signals.sort(["ts_event", "alert_id"])
    latency = params.latency_ms * 1000
    fills: list[dict[str, Any]] = []
    trades: list[dict[str, Any]] = []
    rejected: Counter[str] = Counter()
    actions: list[dict[str, Any]] = []
    exits: list[tuple[int, int, _Open]] = []  # (exit decision, order, trade)
    open_by_asset: dict[str, list[_Open]] = {}
    order = 0

    def send(venue: Venue, ts: int, is_buy: bool, qty: float, reduce_only: bool) -> tuple[float, float, int]:
        reference = venue.market.reference(ts)
        if math.isnan(reference):
            rejected["no_market"] += 1
            return 0.0, math.nan, ts
        try:
            hl = market_order(venue.instrument, is_buy, qty, reference, params.slippage_bps, reduce_only)
        except OrderRejected as e:
            rejected[e.rule] += 1
            return 0.0, math.nan, ts
        if len(actions) < 20:
            actions.append(order_action([hl]))
        got = venue.market.fill(ts, is_buy, float(hl.size), float(hl.price))
        if got.qty > 0:
            fee = got.qty * got.price * params.fees_bps / 1e4
            fills.append({"ts": got.ts, "sent_ts": ts, "asset": venue.instrument.asset,
                          "side": "buy" if is_buy else "sell", "qty": got.qty, "price": got.price,
                          "fee_usd": fee, "reduce_only": reduce_only})
        else:
            rejected["unfilled"] += 1
        return got.qty, got.price, got.ts

    def close(trade: _Open, decision: int, reason: str) -> None:
        trade.closed = True
        venue = venues[trade.asset]
        qty, px, ts = send(venue, decision + latency, trade.direction < 0, trade.qty, True)
        if qty <= 0:
            # the exit could not fill (past the tape's end, or beyond its limit): marked at the reference
            # price when it was sent, else at the last trade, and said so
            ts = decision + latency
            px, qty = venue.market.reference(ts), trade.qty
            if math.isnan(px):
                px = float(venue.market.t_price[-1])
            reason = "marked"
        fee = trade.fees + qty * px * params.fees_bps / 1e4
        pnl = trade.direction * qty * (px - trade.entry_px) - fee
        trades.append({"signal_id": trade.signal_id, "asset": trade.asset, "direction": trade.direction,
                       "decision_ts": trade.decision_ts, "entry_ts": trade.entry_ts,
                       "entry_px": trade.entry_px, "exit_ts": ts, "exit_px": px, "qty": qty,
                       "fees_usd": fee, "pnl_usd": pnl, "exit_reason": reason})
        open_by_asset[trade.asset].remove(trade)

    def due(until: int) -> None:
        while exits and exits[0][0] <= until:
            at, _, trade = heapq.heappop(exits)
            if not trade.closed:
                close(trade, at, "horizon")

    for sig in signals.iter_rows(named=True):
        asset, direction, t = str(sig["asset"]), int(sig["direction"]), int(sig["ts_event"])
        due(t)
        venue = venues.get(asset)
        if venue is None:
            rejected["no_venue"] += 1
            continue
        held = open_by_asset.setdefault(asset, [])
        for trade in [tr for tr in held if tr.direction != direction]:
            close(trade, t, "opposite_signal")
        exposure = sum(tr.direction * tr.qty * tr.entry_px for tr in held)
        if abs(exposure + direction * params.size_usd) > params.max_position_usd + 1e-9:
            rejected["position_limit"] += 1
            continue
        reference = venue.market.reference(t + latency)
        if math.isnan(reference):
            rejected["no_market"] += 1
            continue
        qty, px, ts = send(venue, t + latency, direction > 0, params.size_usd / reference, False)
        if qty <= 0:
            continue
        trade = _Open(str(sig["alert_id"]), asset, direction, t, t + int(sig["horizon_s"]) * US, ts, px, qty,
                      qty * px * params.fees_bps / 1e4)
        held.append(trade)
        order += 1
        heapq.heappush(exits, (trade.exit_at, order, trade))
    due(np.iinfo(np.int64).max)
    trade_frame = pl.DataFrame(trades, schema={c: _TRADE_TYPES[c] for c in TRADE_COLUMNS}, orient="row")
    equity = equity_curve(trade_frame, venues)
    summary = figures(trade_frame, equity, params)
    summary["rejected"] = dict(sorted(rejected.items()))
    summary["signals"] = signals.height
    return BacktestResult(pl.DataFrame(fills, schema=_FILL_TYPES, orient="row"), trade_frame, equity, summary,
                          actions)


_TRADE_TYPES: Final = {
    "signal_id": pl.Utf8, "asset": pl.Utf8, "direction": pl.Int64, "decision_ts": pl.Int64,
    "entry_ts": pl.Int64, "entry_px": pl.Float64, "exit_ts": pl.Int64, "exit_px": pl.Float64,
    "qty": pl.Float64, "fees_usd": pl.Float64, "pnl_usd": pl.Float64, "exit_reason": pl.Utf8,
}
_FILL_TYPES: Final = {
    "ts": pl.Int64, "sent_ts": pl.Int64, "asset": pl.Utf8, "side": pl.Utf8, "qty": pl.Float64,
    "price": pl.Float64, "fee_usd": pl.Float64, "reduce_only": pl.Boolean,
}
GRID_US: Final = 60 * US


def equity_curve(trades: pl.DataFrame, venues: dict[str, Venue]) -> pl.DataFrame:
    """Equity (USD, from 0) on a one-minute grid: realised P&L of closed trades plus open trades marked at
    the last trade price, and the drawdown from the running peak."""
    schema = {"ts": pl.Int64, "equity_usd": pl.Float64, "drawdown_usd": pl.Float64}
    if trades.is_empty():
        return pl.DataFrame(schema=schema)
    lo = int(trades["entry_ts"].to_numpy().min()) // GRID_US * GRID_US
    hi = int(trades["exit_ts"].to_numpy().max()) // GRID_US * GRID_US + GRID_US
    grid = np.arange(lo, hi + 1, GRID_US, dtype=np.int64)
    equity = np.zeros(len(grid))
    for asset, part in trades.group_by("asset"):
        mark = venues[str(asset[0])].market.mark(grid)
        for row in part.iter_rows(named=True):
            held = (grid >= row["entry_ts"]) & (grid < row["exit_ts"])
            equity[held] += row["direction"] * row["qty"] * (mark[held] - row["entry_px"])
            equity[grid >= row["exit_ts"]] += row["pnl_usd"]
    equity = np.nan_to_num(equity)
    drawdown = equity - np.maximum.accumulate(np.maximum(equity, 0.0))
    return pl.DataFrame({"ts": grid, "equity_usd": equity, "drawdown_usd": drawdown}, schema=schema)


def figures(trades: pl.DataFrame, equity: pl.DataFrame, params: BacktestParams) -> dict[str, Any]:
    """P&L, return on ``max_position_usd``, max drawdown, hit rate, turnover, fees, per-trade t-statistic
    and, over at least ``SHARPE_MIN_DAYS`` days, the annualised Sharpe ratio of daily P&L; the P&L per
    UTC day of the decisions (``per_day_pnl_usd``, by ISO date)."""
    pnl = trades["pnl_usd"].to_numpy() if trades.height else np.empty(0)
    n = len(pnl)
    std = float(pnl.std(ddof=1)) if n >= 2 else 0.0
    notional = float((trades["qty"] * (trades["entry_px"] + trades["exit_px"])).sum()) if n else 0.0
    out: dict[str, Any] = {
        "trades": n,
        "pnl_usd": float(pnl.sum()),
        "return": float(pnl.sum()) / params.max_position_usd,
        "max_drawdown_usd": float(-equity["drawdown_usd"].to_numpy().min()) if equity.height else 0.0,
        "hit_rate": float((pnl > 0).mean()) if n else None,
        "turnover": notional / params.max_position_usd,
        "fees_usd": float(trades["fees_usd"].sum()) if n else 0.0,
        "t_stat": float(pnl.mean() / (std / math.sqrt(n))) if n >= 2 and std > 0 else None,
        "sharpe": None,
    }
    if n:
        days = (trades["exit_ts"] // DAY_US).to_numpy()
        span = int(days.max() - days.min()) + 1
        if span >= SHARPE_MIN_DAYS:
            daily = np.bincount(days - days.min(), weights=pnl, minlength=span)
            if daily.std(ddof=1) > 0:
                out["sharpe"] = float(daily.mean() / daily.std(ddof=1) * math.sqrt(365))
        out["days"] = span
        day = (pl.col("decision_ts") // DAY_US * DAY_US).alias("day")
        by_day = trades.group_by(day).agg(pl.col("pnl_usd").sum()).sort("day")
        out["per_day_pnl_usd"] = {
            datetime.fromtimestamp(d / US, UTC).date().isoformat(): float(v) for d, v in by_day.iter_rows()
        }
    return out
