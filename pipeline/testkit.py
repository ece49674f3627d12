"""Test kit for the pipeline (tests and benchmarks only): event builders, raw batches, engine runs over
micro-batch splits, a clock moved by hand. Hypothesis strategies are in ``tests/pipeline/strategies.py``
(a dev dependency)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from core.events import EventKind, TapeKind, to_wire
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


def transfer(tx: int, log_index: int, asset: str, amount: float, ts: int, *, chain: str = "ethereum",
             from_addr: str = "0x" + "11" * 20, to_addr: str = "0x" + "22" * 20,
             ts_recv: int | None = None) -> tuple[TapeKind, dict[str, Any]]:
    """An on-chain transfer (``tx`` numbers its transaction; the hash is made from it)."""
    return "transfer", {"chain": chain, "tx_hash": f"0x{tx:064x}", "log_index": log_index, "block": tx,
                        "ts_event": ts, "ts_recv": ts_recv, "asset": asset, "amount": amount,
                        "from_addr": from_addr, "to_addr": to_addr}


Item = tuple[TapeKind, dict[str, Any]] | bytes


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


class ManualClock:
    """A router ``Clock`` for tests: time moves only by ``advance``, which returns once every thread
    waiting on the clock has seen the new time (and done what fell due) and waits again.

    ``waiters`` is how many threads will wait on it (a router's committer: 1); every ``advance`` first
    waits for them to arrive, so a thread that starts late cannot miss a step.
    """

    HANG_S = 10.0
    """Real seconds a waiting thread may take to come back before ``advance`` reports it hung (only a
    bug exceeds it: the thread has nothing to wait for)."""

    def __init__(self, waiters: int = 0) -> None:
        self.waiters = waiters
        self._now = 0.0
        self._lock = threading.Condition()
        self._conds: set[threading.Condition] = set()
        self._threads: set[threading.Thread] = set()
        self._parks = 0  # waits begun so far
        self._parked: dict[threading.Thread, int] = {}  # threads waiting now -> the number of their wait

    def monotonic(self) -> float:
        """The time ``advance`` has reached (starts at 0)."""
        with self._lock:
            return self._now

    def wait_until(self, cond: threading.Condition, deadline: float | None) -> None:
        """Wait on ``cond`` until notified (``advance`` notifies); at once when ``deadline`` passed."""
        me = threading.current_thread()
        with self._lock:
            # the deadline is checked under the clock's lock: an advance either came before (seen here)
            # or comes after this thread is registered (and then notifies it)
            self._conds.add(cond)
            self._threads.add(me)
            if deadline is not None and self._now >= deadline:
                return
            self._parks += 1
            self._parked[me] = self._parks
            self._lock.notify_all()
        try:
            cond.wait()
        finally:
            with self._lock:
                del self._parked[me]

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds``; return once every waiting thread has looked at the new time."""
        self._settle(after=0)
        with self._lock:
            self._now += seconds
            mark = self._parks
            conds = list(self._conds)
        for cond in conds:
            with cond:
                cond.notify_all()
        self._settle(after=mark)

    def _settle(self, after: int) -> None:
        """Block until ``waiters`` threads have waited and each waits again (a wait begun after wait
        number ``after``) or has ended."""

        def settled() -> bool:
            return len(self._threads) >= self.waiters and all(
                self._parked.get(t, -1) > after or not t.is_alive() for t in self._threads
            )

        give_up = time.monotonic() + self.HANG_S
        with self._lock:
            # polls too: a thread that ends does not notify
            while not settled():
                if time.monotonic() > give_up:
                    raise AssertionError(f"a thread on the clock did not wait again in {self.HANG_S} s")
                self._lock.wait(0.01)
