"""Benchmark: ``coattail backtest``'s engine over real Binance BTCUSDT market data.

    .venv/bin/python benchmarks/bench_backtest.py [--tile 1] [--threshold-usd 250000] [--size-usd 600]

Imports the real Binance spot BTCUSDT WebSocket captures (``/work/shared/real-tapes/binance-ws``,
2024-08-08 23:54 to 2024-08-09 00:05 UTC: trades and bookTicker quotes) into a tape, then does what the
issue's reference run did with an event-driven engine: a signal on each trade of at least
``--threshold-usd`` (taker side), ``--size-usd`` per entry, closed after 60 s; the follow run and the
random-direction baseline. ``--tile N`` repeats the captured market N times back to back in time (real
events, shifted), for a day-sized input from the short captures. Prints one JSON line: market events,
signals, load and backtest seconds (both runs), market events/s over both and the peak RSS of the
process. A script, not a test: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

from coattail.backtest.engine import BacktestParams, Venue, random_directions, run_backtest
from coattail.backtest.market import Market, load_markets
from pipeline.config import ConfigLoader
from replay.readers.importer import import_files

CAPTURES = Path("/work/shared/real-tapes/binance-ws")
KEY = ("binance", "BTCUSDT")


def tiled(market: Market, n: int) -> Market:
    """The market repeated ``n`` times back to back in time."""
    if n == 1:
        return market
    span = int(max(market.q_ts.max(), market.t_ts.max()) - min(market.q_ts.min(), market.t_ts.min())) + 1

    def times(ts: np.ndarray) -> np.ndarray:
        return np.concatenate([ts + i * span for i in range(n)])

    def rep(a: np.ndarray) -> np.ndarray:
        return np.tile(a, n)

    return Market(
        times(market.q_ts),
        rep(market.bid),
        rep(market.bid_qty),
        rep(market.ask),
        rep(market.ask_qty),
        times(market.t_ts),
        rep(market.t_price),
        rep(market.t_qty),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tile", type=int, default=1)
    parser.add_argument("--threshold-usd", type=float, default=250_000.0)
    parser.add_argument("--size-usd", type=float, default=600.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as tmp:
        tape = Path(tmp) / "tape"
        spot = sorted(CAPTURES.glob("spot_btcusdt_*.gz"))
        import_files(spot, tape, skip_bad=True, reject_path=Path(tmp) / "rejects.txt")
        t0 = time.perf_counter()
        market = tiled(load_markets([tape], [KEY])[KEY], args.tile)
        load_s = time.perf_counter() - t0
    notional = market.t_price * market.t_qty
    big = np.flatnonzero(notional >= args.threshold_usd)
    # the taker side is not in the market arrays: a trade at or above the mid before it was a buy
    mid_before = (market.bid + market.ask)[
        np.maximum(np.searchsorted(market.q_ts, market.t_ts[big]) - 1, 0)
    ] / 2
    signals = pl.DataFrame(
        {
            "alert_id": [f"t{i}" for i in big],
            "asset": ["BTC"] * len(big),
            "ts_event": market.t_ts[big],
            "direction": np.where(market.t_price[big] >= mid_before, 1, -1),
            "horizon_s": [60] * len(big),
        }
    )
    inst = ConfigLoader().load("small", env={}).instruments.hyperliquid("BTC")
    assert inst is not None
    venues = {"BTC": Venue(inst, market)}
    params = replace(BacktestParams(), size_usd=args.size_usd, max_position_usd=1e12)
    t0 = time.perf_counter()
    follow = run_backtest(signals, venues, params)
    chance = run_backtest(random_directions(signals, params.seed), venues, params)
    backtest_s = time.perf_counter() - t0
    events = market.events
    print(
        json.dumps(
            {
                "market_events": events,
                "trades": len(market.t_ts),
                "quotes": len(market.q_ts),
                "tile": args.tile,
                "signals": signals.height,
                "load_s": round(load_s, 3),
                "backtest_s": round(backtest_s, 3),
                "events_per_s": round(events / (load_s + backtest_s)),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "follow_pnl_usd": round(follow.summary["pnl_usd"], 2),
                "random_pnl_usd": round(chance.summary["pnl_usd"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
