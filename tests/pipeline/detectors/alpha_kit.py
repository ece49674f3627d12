"""Shared by the MOD-011 tests: a config with short horizons, a BTCUSDT tape with planted whales whose
price drifts their way (or not), and a table of a run in a comparable form."""

from __future__ import annotations

import random
from typing import Any

import pandas as pd

from pipeline.config import Config, ConfigLoader
from pipeline.engine import BatchResult
from pipeline.testkit import Item, trade, transfer
from tests.pipeline.strategies import EXCHANGE_WALLET

T0 = 1_767_225_600_000_000
SEC = 1_000_000
FAST = {
    "settings.MOD-011.horizons_s": [10, 30],
    "settings.MOD-011.signal_horizon_s": 30,
    "settings.MOD-011.window": 20,
    "settings.MOD-011.min_samples": 3,
    "settings.MOD-011.retention_s": 120,
}


def config(**overrides: Any) -> Config:
    """MOD-001 whales (>= 1M USD) scored by MOD-011 on BTC, with short horizons."""
    return ConfigLoader().load(
        "large",
        env={},
        overrides={
            "modules": ["MOD-001", "MOD-006", "MOD-007", "MOD-009", "MOD-010", "MOD-011"],
            "instruments": ["binance:BTCUSDT"],
            "settings.MOD-007.min_trades": 1000,
            **FAST,
            **overrides,
        },
    )


INFORMED = "0x" + "a1" * 20
"""A whale wallet whose exchange inflows (``planted(inflows=True)``) precede a drop."""
UNINFORMED = "0x" + "b2" * 20
"""A whale wallet whose inflows precede nothing."""


def planted(
    seed: int, *, edge_bps: float, whales: int = 40, gap_s: int = 45, drift_s: int = 20, start: int = T0,
    inflows: bool = False, stable: bool = False,
) -> list[Item]:
    """BTCUSDT trading every second (a random walk of +-1 bps, 0.5 BTC a trade); every ``gap_s`` seconds a
    whale of a random side, after which the price drifts ``edge_bps`` its way over ``drift_s`` seconds.

    ``inflows``: the whales are instead MOD-010 exchange inflows of 100 BTC, received (``ts_recv``) at
    that second, from ``INFORMED`` (the price then drifts ``edge_bps`` down) or ``UNINFORMED`` (no
    drift); every other one is mined 2 s before (decided at its own arrival), the rest in that second (held
    until a later trade passes its block time). ``stable``: the inflows move 10M USDT instead (counted for
    BTC's market, decided at their own arrival), after which an informed wallet's price drifts up."""
    rng = random.Random(seed)
    price, tid, sign, drifting = 50_000.0, 0, 0, 0
    items: list[Item] = []
    for second in range(whales * gap_s + 60):
        ts = start + second * SEC
        if second % gap_s == 0 and second // gap_s < whales:
            n = second // gap_s
            if inflows:
                wallet = rng.choice([INFORMED, UNINFORMED])
                asset, amount = ("USDT", 1e7) if stable else ("BTC", 100.0)
                items.append(transfer(n + 1, 0, asset, amount, ts - 2 * SEC * (n % 2), from_addr=wallet,
                                      to_addr=EXCHANGE_WALLET, ts_recv=ts))
                sign = (1 if stable else -1) if wallet == INFORMED else 0
            else:
                side = rng.choice(["buy", "sell"])
                tid += 1
                items.append(trade(tid, round(price, 2), 30.0, ts, side=side))
                sign = 1 if side == "buy" else -1
            drifting = drift_s
            ts += SEC // 2
        drift = sign * edge_bps / drift_s if drifting > 0 else 0.0
        drifting -= 1
        tid += 1
        price *= 1 + (drift + rng.choice([-1.0, 1.0])) / 1e4
        items.append(trade(tid, round(price, 2), 0.5, ts, side=rng.choice(["buy", "sell"])))
    return items


def table(results: list[BatchResult], name: str) -> pd.DataFrame:
    frames = [r.tables[name].to_pandas() for r in results if name in r.tables]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    key = "alert_id" if name != "alpha_scores" else ["alert_id", "horizon_s"]
    return df.sort_values(key).reset_index(drop=True) if len(df) else df
