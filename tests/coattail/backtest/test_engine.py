"""Paper execution: fills walk the displayed size (or the next trades), IOC limits stop the walk, exits
by horizon and by opposite signal, the position limit, the figures; and, on planted tapes, following
MOD-011's signals makes money after fees where random entries at the same times do not."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from coattail.backtest.engine import BacktestParams, Venue, random_directions, run_backtest
from coattail.backtest.market import Market
from pipeline.testkit import run_engine
from tests.coattail.backtest.test_hyperliquid import BTC
from tests.pipeline.detectors.alpha_kit import SEC, T0, config, planted, table

F = np.float64


def book(prices: list[float], sizes: list[float], spread: float = 1.0) -> Market:
    """One quote a second from T0: mid ``prices[i]``, ``sizes[i]`` on each side; a trade at each mid."""
    n = len(prices)
    ts = T0 + np.arange(n, dtype=np.int64) * SEC
    mid = np.asarray(prices, F)
    size = np.asarray(sizes, F)
    return Market(ts, mid - spread / 2, size, mid + spread / 2, size, ts, mid, np.full(n, 1.0))


def test_a_buy_walks_the_displayed_size_then_the_next_quotes() -> None:
    m = book([100.0, 101.0, 102.0, 103.0], [1.0, 1.0, 1.0, 1.0])
    got = m.fill(T0, True, 2.5, 200.0)
    assert got.qty == pytest.approx(2.5)
    assert got.price == pytest.approx((100.5 + 101.5 + 0.5 * 102.5) / 2.5)
    assert got.ts == T0 + 2 * SEC
    sell = m.fill(T0 + SEC // 2, False, 1.0, 0.0)  # the first quote at or after the send time
    assert (sell.price, sell.ts) == (100.5, T0 + SEC)


def test_the_ioc_limit_stops_the_walk_and_cancels_the_rest() -> None:
    m = book([100.0, 101.0, 110.0, 100.0], [1.0, 1.0, 1.0, 1.0])
    got = m.fill(T0, True, 3.0, 105.0)
    assert got.qty == pytest.approx(2.0) and got.price == pytest.approx(101.0)


def test_without_quotes_the_next_trades_fill() -> None:
    m = book([100.0, 101.0, 102.0], [1.0, 1.0, 1.0])
    trades_only = Market(np.empty(0, np.int64), *(np.empty(0, F),) * 4, m.t_ts, m.t_price, np.full(3, 0.5))
    got = trades_only.fill(T0 + 1, False, 0.75, 0.0)
    assert got.qty == pytest.approx(0.75) and got.price == pytest.approx((101.0 * 0.5 + 102.0 * 0.25) / 0.75)


def signals(rows: list[tuple[int, int, int]]) -> pl.DataFrame:
    """``(seconds after T0, direction, horizon_s)`` as BTC signals."""
    return pl.DataFrame({
        "alert_id": [f"s{i}" for i in range(len(rows))], "asset": ["BTC"] * len(rows),
        "ts_event": [T0 + s * SEC for s, _, _ in rows], "direction": [d for _, d, _ in rows],
        "horizon_s": [h for _, _, h in rows],
    })


def test_exits_by_horizon_and_by_opposite_signal_within_the_position_limit() -> None:
    prices = [60_000.0 + 10 * i for i in range(400)]
    venues = {"BTC": Venue(BTC, book(prices, [5.0] * 400))}
    params = BacktestParams(fees_bps=0.0, latency_ms=0, size_usd=10_000, max_position_usd=20_000)
    result = run_backtest(signals([(10, 1, 60), (20, 1, 60), (30, 1, 60), (100, 1, 60), (120, -1, 60)]),
                          venues, params)
    trades = result.trades.sort("decision_ts")
    assert result.summary["rejected"] == {"position_limit": 1}  # the third long would hold 30k
    assert trades["exit_reason"].to_list() == ["horizon", "horizon", "opposite_signal", "horizon"]
    # a long held 60 s on a rising price gains 600 USD a BTC less the spread
    first = trades.row(0, named=True)
    assert first["pnl_usd"] == pytest.approx(first["qty"] * (600.0 - 1.0))
    assert trades.row(3, named=True)["pnl_usd"] < 0  # the short lost
    fees = run_backtest(signals([(10, 1, 60)]), venues, BacktestParams(fees_bps=10.0, latency_ms=0))
    assert fees.summary["fees_usd"] == pytest.approx(fees.fills["fee_usd"].sum())
    assert fees.summary["fees_usd"] == pytest.approx(2 * 10_000 * 10 / 1e4, rel=0.02)
    s = result.summary
    assert s["trades"] == 4 and s["hit_rate"] == pytest.approx(0.75) and s["sharpe"] is None
    assert s["max_drawdown_usd"] >= 0 and s["turnover"] > 0
    assert result.equity["equity_usd"].to_list()[-1] == pytest.approx(s["pnl_usd"])


def test_following_a_planted_edge_pays_after_fees_and_random_entries_do_not() -> None:
    follow, chance = [], []
    for seed in range(3):
        items = planted(seed, edge_bps=30.0)
        sig = pl.from_pandas(table(run_engine(config(), items), "signals"))
        trades = [i[1] for i in items if not isinstance(i, bytes)]
        ts = np.array([t["ts_event"] for t in trades], np.int64)
        px = np.array([t["price"] for t in trades], F)
        empty = np.empty(0, F)
        market = Market(np.empty(0, np.int64), empty, empty, empty, empty, ts, px, np.full(len(ts), 50.0))
        venues = {"BTC": Venue(BTC, market)}
        params = BacktestParams(fees_bps=4.5, latency_ms=50, seed=seed)
        follow.append(run_backtest(sig, venues, params).summary["pnl_usd"])
        chance.append(run_backtest(random_directions(sig, seed), venues, params).summary["pnl_usd"])
    assert np.mean(follow) > 0
    assert np.mean(chance) < np.mean(follow) / 2
