"""Test kit for the pipeline (tests and benchmarks only): event builders, raw batches, engine runs over
micro-batch splits. Hypothesis strategies are in ``tests/pipeline/strategies.py`` (a dev dependency)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from core.events import EventKind, to_wire
from pipeline.config import Config, ConfigLoader
from pipeline.detectors.registry import ModuleRegistry
from pipeline.engine import BatchResult, Engine
from pipeline.parse import RAW_SCHEMA, parse_batch

T0 = 1_700_000_040_000_000
"""2023-11-14 22:14:00 UTC, a minute boundary."""
MIN = 60_000_000


def small_config(**overrides: Any) -> Config:
    """The small tier with MOD-001 and MOD-004 only (the modules this package owns), plus overrides."""
    return ConfigLoader().load("small", env={}, overrides={"modules": ["MOD-001", "MOD-004"], **overrides})


def trade(trade_id: int, price: float, qty: float, ts: int, *, symbol: str = "BTCUSDT",
          exchange: str = "binance", side: str = "buy") -> tuple[EventKind, dict[str, Any]]:
    """A trade event."""
    return "trade", {"exchange": exchange, "symbol": symbol, "trade_id": trade_id, "price": price,
                     "qty": qty, "side": side, "ts_event": ts, "ts_recv": None}


def quote(update_id: int, bid: float, ask: float, ts: int, *, symbol: str = "BTCUSDT",
          exchange: str = "binance") -> tuple[EventKind, dict[str, Any]]:
    """A quote event."""
    return "quote", {"exchange": exchange, "symbol": symbol, "bid_px": bid, "bid_qty": 1.0, "ask_px": ask,
                     "ask_qty": 2.0, "update_id": update_id, "ts_event": ts, "ts_recv": None}


Item = tuple[EventKind, dict[str, Any]] | bytes


def payloads(items: Sequence[Item], ts_sent: int | None = None) -> list[bytes]:
    """Wire payloads of events (bytes pass through unchanged, for malformed records)."""
    return [i if isinstance(i, bytes) else to_wire(i[0], i[1], ts_sent=ts_sent) for i in items]


def raw_table(datas: Sequence[bytes], *, shard: str = "shardId-0", first_seq: int = 0) -> pa.Table:
    """A ``RAW_SCHEMA`` table of payloads, one per (fake) Kinesis record."""
    n = len(datas)
    return pa.table(
        {
            "shard_id": [shard] * n,
            "sequence_number": [f"{first_seq + i:020d}" for i in range(n)],
            "sub_sequence": [0] * n,
            "partition_key": ["k"] * n,
            "data": list(datas),
            "ts_ingest": [None] * n,
        },
        schema=RAW_SCHEMA,
    )


def run_engine(
    config: Config,
    items: Sequence[Item],
    cuts: Sequence[int] = (),
    registry: ModuleRegistry | None = None,
    state_dir: Path | None = None,
) -> list[BatchResult]:
    """Run the engine over ``items`` split at ``cuts`` (micro-batches). With ``state_dir`` every batch
    gets a new engine that reloads the state the previous one committed, as after a restart."""
    detectors = (registry or ModuleRegistry()).build(config)
    engine = Engine(config, detectors, state_dir=state_dir)
    datas = payloads(items)
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(datas))), len(datas)]
    results = []
    for batch_id, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        parsed = parse_batch(raw_table(datas[lo:hi], first_seq=lo).to_batches()[0]) if hi > lo else None
        if parsed is None:
            continue
        if state_dir is not None:
            engine = Engine(config, detectors, state_dir=state_dir)
        results.append(engine.process(parsed, batch_id))
        engine.commit(batch_id)
    return results


def alerts_of(results: Sequence[BatchResult]) -> pd.DataFrame:
    """All alerts of a run, sorted by id, without the write stamp."""
    frames = [r.alerts.to_pandas() for r in results]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if df.empty:
        return df
    df = df.drop(columns=["ts_written"]).sort_values("alert_id").reset_index(drop=True)
    df["event_ids"] = df["event_ids"].map(list)
    return df


def dq_sums(results: Sequence[BatchResult]) -> dict[tuple[str, str, int | None, str], int]:
    """dq_metrics summed per (exchange, symbol, window_start, reason)."""
    out: dict[tuple[str, str, int | None, str], int] = {}
    for r in results:
        for row in r.tables["dq_metrics"].to_pylist():
            key = (row["exchange"], row["symbol"], row["window_start"], row["reason"])
            out[key] = out.get(key, 0) + row["count"]
    return out
