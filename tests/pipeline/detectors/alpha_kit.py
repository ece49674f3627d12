"""Shared by the MOD-011 tests: a config with short horizons, a BTCUSDT tape with planted whales whose
price drifts their way (or not), and a table of a run in a comparable form."""

from __future__ import annotations

import random
from typing import Any

import pandas as pd

from pipeline.config import Config, ConfigLoader
from pipeline.engine import BatchResult
from pipeline.testkit import Item, trade

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
            "modules": ["MOD-001", "MOD-006", "MOD-007", "MOD-009", "MOD-011"],
            "instruments": ["binance:BTCUSDT"],
            "settings.MOD-007.min_trades": 1000,
            **FAST,
            **overrides,
        },
    )


def planted(
    seed: int, *, edge_bps: float, whales: int = 40, gap_s: int = 45, drift_s: int = 20, start: int = T0
) -> list[Item]:
    """BTCUSDT trading every second (a random walk of +-1 bps, 0.5 BTC a trade); every ``gap_s`` seconds a
    whale of a random side, after which the price drifts ``edge_bps`` its way over ``drift_s`` seconds."""
    rng = random.Random(seed)
    price, tid, sign, drifting = 50_000.0, 0, 0, 0
    items: list[Item] = []
    for second in range(whales * gap_s + 60):
        ts = start + second * SEC
        if second % gap_s == 0 and second // gap_s < whales:
            side = rng.choice(["buy", "sell"])
            tid += 1
            items.append(trade(tid, round(price, 2), 30.0, ts, side=side))
            sign, drifting = (1 if side == "buy" else -1), drift_s
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
