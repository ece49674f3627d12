"""The engine into the memory and stdout targets: completeness, determinism, pacing, summaries."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from core.errors import ReplayError
from replay.clock import parse_speed
from replay.engine import Replay
from replay.merge import TimeWindow
from replay.targets.memory import MemoryTarget
from replay.targets.stdout import StdoutTarget
from replay.testkit import T0, write_tape
from tests.replay.strategies import quotes, trades


class FakeClock:
    """Time only moves when the pacer sleeps: pacing logic without wall-clock flakiness."""

    def __init__(self) -> None:
        self.now = 0
        self.sleeps = 0

    def monotonic_us(self) -> int:
        return self.now

    def wall_us(self) -> int:
        return 1_000_000_000 + self.now

    def sleep_us(self, us: int) -> None:
        self.sleeps += 1
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


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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
def test_pacing_sends_nothing_early_and_keeps_schedule(tmp_path: Path, speed: str) -> None:
    rows = [_trade(i, T0 + i * 250_000) for i in range(40)]  # 10 s of exchange time
    write_tape(tmp_path / "t", rows, [])
    clock = FakeClock()
    target = MemoryTarget()
    s = parse_speed(speed)
    assert s is not None
    summary = Replay([tmp_path / "t"], target, speed=s, clock=clock).run()
    sent = target.table()
    for ts_event, ts_sent in zip(
        sent.column("ts_event").to_pylist(), sent.column("ts_sent").to_pylist(), strict=True
    ):
        due = (ts_event - T0) / s
        assert due <= ts_sent - 1_000_000_000 <= due + 50_000 + 1
    assert summary.lag is not None and summary.lag.max_ms <= 50.1
    assert summary.elapsed_s == pytest.approx(9.75 / s, abs=0.06)


@pytest.mark.parametrize(("speed", "span_s"), [(1.0, 1.5), (10.0, 5.0)])
def test_speed_on_the_real_clock(tmp_path: Path, speed: float, span_s: float) -> None:
    n = 30
    rows = [_trade(i, T0 + int(i * span_s * 1e6 / (n - 1))) for i in range(n)]
    write_tape(tmp_path / "t", rows, [])
    target = MemoryTarget()
    summary = Replay([tmp_path / "t"], target, speed=speed).run()
    expected = span_s / speed
    # Generous: the box is shared; what matters is "not early" and "not wildly late".
    assert expected * 0.95 <= summary.elapsed_s <= expected + 1.0
    stamps = target.table().column("ts_sent").to_pylist()
    offsets = [(s - stamps[0]) / 1e6 for s in stamps]
    for i, off in enumerate(offsets):
        assert off >= (rows[i]["ts_event"] - T0) / 1e6 / speed - 0.005
    assert summary.lag is not None and summary.lag.events == n


def test_max_speed_has_no_lag_and_cuts_by_window(tmp_path: Path) -> None:
    write_tape(tmp_path / "t", [_trade(i, T0 + i * 1_000_000) for i in range(10)], [])
    target = MemoryTarget()
    summary = Replay([tmp_path / "t"], target, window=TimeWindow(T0 + 2_000_000, T0 + 3_000_000)).run()
    assert summary.sent == 1 and summary.lag is None
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
