"""Replay benchmarks: into memory, into Kinesis on the moto server (with and without KPL aggregation),
and the lag behind schedule at 1x and 10x on a busy minute.

    .venv/bin/python benchmarks/bench_replay.py memory            # goal >= 1M events/s
    .venv/bin/python benchmarks/bench_replay.py kinesis           # goal >= 150k events/s aggregated
    .venv/bin/python benchmarks/bench_replay.py kinesis --allocator mimalloc   # Arrow's default pool
    .venv/bin/python benchmarks/bench_replay.py lag               # p50/p99/max at 1x and 10x
    .venv/bin/python benchmarks/bench_replay.py all --json out.json

A busy minute is generated here (``--tape`` replays an existing tape instead): by default 20 symbols,
1.2M events (trades and quotes) in 60 s of exchange time, i.e. 20k events/s. The emulator is the stack's
(``python -m infra.moto.server``, as ``coattail up`` runs it); Arrow's buffers come from the allocator the
replay's process uses (``core.arrow_memory``) unless ``--allocator`` names another.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import psutil
import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.tape import Tape, TapeWriter, tape_schema  # noqa: E402
from pipeline.config import RuntimeSettings  # noqa: E402
from replay.engine import Replay  # noqa: E402
from replay.merge import TimeWindow  # noqa: E402
from replay.targets.kinesis import KinesisTarget  # noqa: E402
from replay.targets.memory import MemoryTarget  # noqa: E402

T0 = 1_767_225_600_000_000  # 2026-01-01 00:00 UTC


def busy_minute(
    out: Path, *, events: int = 1_200_000, symbols: int = 20, seed: int = 1, trades_only: bool = False
) -> Path:
    """A synthetic minute: ``events`` trades and quotes (half each, or trades only) over ``symbols``
    binance symbols."""
    rng = np.random.default_rng(seed)
    ts = np.sort(T0 + rng.integers(0, 60_000_000, events))
    kind = rng.integers(0, 2, events)
    if trades_only:
        kind[:] = 0  # after the draw: the other columns' random streams stay those of the mixed minute
    sym = rng.integers(0, symbols, events)
    names = np.array([f"SYM{i:02d}USDT" for i in range(symbols)], dtype=object)
    seq = np.arange(events, dtype=np.int64)
    price = 100.0 + rng.standard_normal(events).cumsum() * 0.01
    with TapeWriter(out, overwrite=True) as writer:
        for k, name in ((0, "trade"), (1, "quote")):
            m = kind == k
            n = int(m.sum())
            cols: dict[str, Any] = {
                "exchange": pa.array(["binance"] * n),
                "symbol": pa.array(names[sym[m]].tolist()),
                "ts_event": pa.array(ts[m]),
                "ts_recv": pa.array(ts[m] + 1_000),
                "seq": pa.array(seq[m]),
            }
            if name == "trade":
                cols |= {
                    "trade_id": pa.array(
                        _per_symbol_ids(sym[m]) if trades_only else np.arange(n, dtype=np.int64)
                    ),
                    "price": pa.array(price[m]),
                    "qty": pa.array(rng.exponential(0.5, n)),
                    "side": pa.array(np.where(rng.random(n) < 0.5, "buy", "sell").tolist()),
                }
            else:
                cols |= {
                    "bid_px": pa.array(price[m] - 0.01),
                    "bid_qty": pa.array(rng.exponential(2, n)),
                    "ask_px": pa.array(price[m] + 0.01),
                    "ask_qty": pa.array(rng.exponential(2, n)),
                    "update_id": pa.array(np.arange(n, dtype=np.int64)),
                }
            writer.write(name, pa.table(cols).select(tape_schema(name).names))  # type: ignore[arg-type]
        writer.close(source="synthetic", origin=["benchmarks/bench_replay.py busy_minute"])
    return out


def _per_symbol_ids(sym: np.ndarray) -> np.ndarray:
    """Trade ids counting 0, 1, 2, ... per symbol, as an exchange numbers them (no gaps)."""
    ids = np.empty(sym.size, dtype=np.int64)
    for s in np.unique(sym):
        where = np.flatnonzero(sym == s)
        ids[where] = np.arange(where.size)
    return ids


def bench_memory(tape: Path) -> dict[str, Any]:
    Replay([tape], MemoryTarget()).run()  # warm the file cache
    best = None
    for _ in range(3):
        s = Replay([tape], MemoryTarget()).run()
        best = s if best is None or s.rate > best.rate else best
    assert best is not None
    return {"events": best.sent, "seconds": round(best.elapsed_s, 3), "events_per_s": round(best.rate)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of another process."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


@contextmanager
def moto_server() -> Iterator[tuple[str, int, Any]]:
    """The stack's moto server in its own process (as `coattail up` runs it): (endpoint, pid, kinesis
    client)."""
    port = _free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "infra.moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        client: Any = boto3.client(
            "kinesis",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        for _ in range(100):
            try:
                client.list_streams()
                break
            except Exception:
                time.sleep(0.1)
        yield endpoint, moto.pid, client
    finally:
        moto.terminate()
        moto.wait(timeout=10)


def _stream(client: Any, name: str) -> str:
    client.create_stream(StreamName=name, ShardCount=2)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1})
    return name


def bench_kinesis(tape: Path, *, plain_seconds: int) -> dict[str, Any]:
    """Aggregated over the whole tape, plain over its first ``plain_seconds``; 2 shards, fresh streams."""
    out: dict[str, Any] = {}
    start = Tape.open(tape).manifest.start_us
    with moto_server() as (endpoint, pid, client):
        for aggregate, window in (
            (True, TimeWindow()),
            (False, TimeWindow(start, start + plain_seconds * 10**6)),
        ):
            name = _stream(client, f"bench-{'agg' if aggregate else 'plain'}")
            target = KinesisTarget(RuntimeSettings(aws_endpoint=endpoint), name, aggregate=aggregate)
            cpu0, moto0 = time.process_time(), _cpu_seconds(pid)
            s = Replay([tape], target, window=window).run()
            cpu_replay, cpu_moto = time.process_time() - cpu0, _cpu_seconds(pid) - moto0
            cpu = cpu_replay + cpu_moto
            out["aggregated" if aggregate else "plain"] = {
                "events": s.sent,
                "seconds": round(s.elapsed_s, 3),
                "events_per_s": round(s.rate),
                "kinesis_records": target.kinesis_records,
                "put_calls": target.calls,
                # CPU seconds of replay + moto: with two free cores the wall time approaches cpu / 2
                "cpu_seconds": round(cpu, 2),
                "cpu_seconds_replay": round(cpu_replay, 2),
                "cpu_seconds_moto": round(cpu_moto, 2),
                "events_per_cpu_second": round(s.sent / cpu),
            }
    out["ratio"] = round(out["aggregated"]["events_per_s"] / out["plain"]["events_per_s"], 1)
    return out


def _lag(s: Any) -> dict[str, Any]:
    assert s.lag is not None
    return {
        "events": s.sent,
        "seconds": round(s.elapsed_s, 2),
        "p50_ms": s.lag.p50_ms,
        "p99_ms": s.lag.p99_ms,
        "max_ms": s.lag.max_ms,
    }


def bench_lag(tape: Path, speeds: list[float]) -> dict[str, Any]:
    """Lag behind schedule into memory (the engine alone) and into Kinesis (aggregated) per speed."""
    out: dict[str, Any] = {}
    for speed in speeds:
        out[f"memory {speed:g}x"] = _lag(Replay([tape], MemoryTarget(), speed=speed).run())
    with moto_server() as (endpoint, _, client):
        for speed in speeds:
            name = _stream(client, f"bench-lag-{speed:g}")
            target = KinesisTarget(RuntimeSettings(aws_endpoint=endpoint), name)
            out[f"kinesis {speed:g}x"] = _lag(Replay([tape], target, speed=speed).run())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["memory", "kinesis", "lag", "all"])
    parser.add_argument("--tape", type=Path, help="Replay this tape instead of a generated busy minute.")
    parser.add_argument("--events", type=int, default=1_200_000)
    parser.add_argument(
        "--plain-seconds",
        type=int,
        default=3,
        help="Exchange seconds replayed without aggregation (it is slow on moto).",
    )
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    parser.add_argument(
        "--allocator",
        choices=["system", "mimalloc", "jemalloc"],
        default="system",
        help="Arrow's memory pool in this process (the replay's process uses the system one).",
    )
    args = parser.parse_args()
    pa.set_memory_pool(getattr(pa, f"{args.allocator}_memory_pool")())
    with tempfile.TemporaryDirectory() as tmp:
        tape = args.tape or busy_minute(Path(tmp) / "busy-minute", events=args.events)
        results: dict[str, Any] = {
            "tape": str(args.tape or f"busy minute, {args.events} events"),
            "allocator": args.allocator,
        }
        if args.what in ("memory", "all"):
            results["memory"] = bench_memory(tape)
        if args.what in ("kinesis", "all"):
            results["kinesis"] = bench_kinesis(tape, plain_seconds=args.plain_seconds)
        if args.what in ("lag", "all"):
            results["lag"] = bench_lag(tape, [1.0, 10.0])
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
