"""The engine into the memory and stdout targets: completeness, determinism, pacing, summaries."""

from __future__ import annotations

import io
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from core.errors import ReplayError
from replay.clock import Pacer, WallClock, parse_speed
from replay.engine import Replay
from replay.merge import TimeWindow
from replay.targets.memory import MemoryTarget
from replay.targets.stdout import StdoutTarget
from replay.testkit import T0, write_tape
from tests.replay.strategies import quotes, trades


class FakeClock:
    """Time only moves when the pacer sleeps: pacing logic without wall-clock flakiness."""

    WALL_US = 1_000_000_000
    """Where ``wall_us`` starts (``ts_sent`` minus this is the time since the start)."""

    def __init__(self) -> None:
        self.now = 0
        self.slept: list[int] = []

    def monotonic_us(self) -> int:
        return self.now

    def wall_us(self) -> int:
        return self.WALL_US + self.now

    def sleep_us(self, us: int) -> None:
        self.slept.append(us)
        self.now += us


def _trade(i: int, ts: int, symbol: str = "BTCUSDT") -> dict[str, Any]:
    return {
        "exchange": "binance",
        "symbol": symbol,
        "trade_id": i,
        "price": 100.0 + i,
        "qty": 0.5,
        "side": "buy" if i % 2 else "sell",
        "ts_event": ts,
        "ts_recv": ts + 7,
    }


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(trades(), quotes(), trades())
def test_memory_replay_holds_every_event_once_in_order_and_is_deterministic(
    t1: list[dict[str, Any]], q1: list[dict[str, Any]], t2: list[dict[str, Any]]
) -> None:
    if not (t1 or q1) or not t2:
        return
    with tempfile.TemporaryDirectory() as tmp:
        write_tape(Path(tmp) / "a", t1, q1)
        write_tape(Path(tmp) / "b", t2, [])
        runs = []
        for batch_rows in (2, 1000):
            target = MemoryTarget()
            summary = Replay([Path(tmp) / "a", Path(tmp) / "b"], target, batch_rows=batch_rows).run()
            runs.append(target.table().drop_columns(["ts_sent"]))
            assert summary.sent == len(t1) + len(q1) + len(t2)
    assert runs[0].equals(runs[1])
    order = list(
        zip(
            runs[0].column("ts_event").to_pylist(),
            runs[0].column("tape").to_pylist(),
            runs[0].column("seq").to_pylist(),
            strict=True,
        )
    )
    assert order == sorted(order)
    got = sorted((r["trade_id"], r["ts_event"]) for r in runs[0].to_pylist() if r["kind"] == 0)
    assert got == sorted((r["trade_id"], r["ts_event"]) for r in t1 + t2)


@pytest.mark.parametrize("speed", ["1x", "10x", "60x"])
# quarter seconds apart; 1.5 s over 29 gaps (at no speed a whole number of microseconds)
@pytest.mark.parametrize("gap_us", [250_000, 51_724])
def test_pacing_sends_each_event_on_the_first_microsecond_it_is_due(
    tmp_path: Path, speed: str, gap_us: int
) -> None:
    rows = [_trade(i, T0 + i * gap_us) for i in range(40)]
    write_tape(tmp_path / "t", rows, [])
    clock = FakeClock()
    target = MemoryTarget()
    s = parse_speed(speed)
    assert s is not None
    summary = Replay([tmp_path / "t"], target, speed=s, clock=clock, batch_rows=7).run()
    sent = target.table()
    due_us = [math.ceil((ts - T0) / s) for ts in sent.column("ts_event").to_pylist()]
    assert [ts - FakeClock.WALL_US for ts in sent.column("ts_sent").to_pylist()] == due_us
    assert summary.elapsed_s == due_us[-1] / 1e6  # done when the last event is sent
    assert summary.lag is not None and summary.lag.events == 40
    assert summary.lag.max_ms == 0  # under a microsecond late: the first tick at or after the due time
    assert max(clock.slept) <= Pacer.MAX_SLEEP_US  # wakes up regularly (progress display, Ctrl-C)
    # the schedule the run's latency starts from: each event's due wall time, to the microsecond
    assert summary.schedule is not None and summary.schedule.wall_us == FakeClock.WALL_US
    due_wall = summary.schedule.due_wall_us(sent.column("ts_event").to_numpy())
    sent_at = sent.column("ts_sent").to_numpy()
    assert ((sent_at - due_wall >= 0) & (sent_at - due_wall <= 1)).all()


def test_the_wall_clock_never_wakes_early() -> None:
    """The real clock the pacer uses by default: a sleep lasts at least as asked (load only makes it
    longer, so this bound holds on a busy machine)."""
    clock = WallClock()
    before = clock.monotonic_us()
    clock.sleep_us(2_000)
    assert clock.monotonic_us() - before >= 2_000
    earliest = time.time_ns() // 1_000
    stamp = clock.wall_us()  # ts_sent: microseconds since the epoch, not a monotonic count
    assert earliest <= stamp <= time.time_ns() // 1_000


def test_max_speed_has_no_lag_and_cuts_by_window(tmp_path: Path) -> None:
    write_tape(tmp_path / "t", [_trade(i, T0 + i * 1_000_000) for i in range(10)], [])
    target = MemoryTarget()
    summary = Replay([tmp_path / "t"], target, window=TimeWindow(T0 + 2_000_000, T0 + 3_000_000)).run()
    assert summary.sent == 1 and summary.lag is None
    # at max speed every event is due when the replay started: latency from it is queueing
    assert summary.schedule is not None and summary.schedule.speed is None
    assert set(summary.schedule.due_wall_us(np.array([T0, T0 + 9_000_000])).tolist()) == {
        summary.schedule.wall_us
    }
    assert summary.first_ts_us == summary.last_ts_us == T0 + 2_000_000


def test_stdout_writes_json_lines(tmp_path: Path) -> None:
    write_tape(tmp_path / "t", [_trade(i, T0 + i) for i in range(3)], [])
    out = io.BytesIO()
    Replay([tmp_path / "t"], StdoutTarget(out)).run()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [x["trade_id"] for x in lines] == [0, 1, 2]
    assert all(x["v"] == 1 and x["type"] == "trade" and x["ts_sent"] > 0 for x in lines)


def test_bad_speed_and_no_tapes_are_clear_errors() -> None:
    with pytest.raises(ReplayError, match="speed"):
        parse_speed("fast")
    with pytest.raises(ReplayError, match="at least one tape"):
        Replay([], MemoryTarget())
    assert parse_speed("max") is None and parse_speed("60x") == 60.0
