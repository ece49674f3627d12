"""The k-way merge: total deterministic order, nothing lost, window cuts, bounded chunks."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.tape import Tape
from pipeline.testkit import trade
from replay.merge import TimeWindow, merge_tapes
from replay.testkit import T0, write_tape
from tests.replay.strategies import quotes, trades

tapes_strategy = st.lists(st.tuples(trades(), quotes()), min_size=1, max_size=3)


def _write_all(root: Path, specs: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]) -> list[Tape]:
    out = []
    for i, (t, q) in enumerate(specs):
        if not t and not q:
            t = [
                {
                    "exchange": "x",
                    "symbol": "Y",
                    "trade_id": 1,
                    "price": 1.0,
                    "qty": 1.0,
                    "side": "buy",
                    "ts_event": T0,
                    "ts_recv": None,
                }
            ]
        write_tape(root / f"t{i}", t, q)
        out.append(Tape.open(root / f"t{i}"))
    return out


def _keys(table: pa.Table) -> list[tuple[int, int, int]]:
    return list(
        zip(
            table.column("ts_event").to_pylist(),
            table.column("tape").to_pylist(),
            table.column("seq").to_pylist(),
            strict=True,
        )
    )


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(tapes_strategy, st.integers(min_value=1, max_value=7))
def test_merge_is_sorted_complete_and_independent_of_batch_size(
    specs: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]], batch_rows: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tapes = _write_all(Path(tmp), specs)
        chunks = list(merge_tapes(tapes, batch_rows=batch_rows))
        whole = list(merge_tapes(tapes, batch_rows=100_000))
        expected = sorted(
            (r["ts_event"], i, 0)
            for i, tape in enumerate(tapes)
            for kind in ("trade", "quote")
            for r in tape.read(kind).to_pylist()
        )
    keys = [k for c in chunks for k in _keys(c)]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    assert [(ts, t) for ts, t, _ in keys] == [(ts, t) for ts, t, _ in expected]
    assert pa.concat_tables(chunks).equals(pa.concat_tables(whole))


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(trades(), quotes(), st.integers(0, 5_000), st.integers(0, 5_000))
def test_window_cut_by_exchange_time(
    t: list[dict[str, Any]], q: list[dict[str, Any]], a_ms: int, b_ms: int
) -> None:
    start, end = T0 + min(a_ms, b_ms) * 1000, T0 + max(a_ms, b_ms) * 1000
    with tempfile.TemporaryDirectory() as tmp:
        tapes = _write_all(Path(tmp), [(t, q)])
        got = [
            ts
            for c in merge_tapes(tapes, window=TimeWindow(start, end), batch_rows=3)
            for ts in c.column("ts_event").to_pylist()
        ]
        every = [ts for c in merge_tapes(tapes) for ts in c.column("ts_event").to_pylist()]
    assert got == [ts for ts in every if start <= ts < end]


def test_chunks_stay_bounded(tmp_path: Path) -> None:
    rows = [trade(i, 1.0, 1.0, T0 + i)[1] for i in range(5_000)]
    write_tape(tmp_path / "a", rows, [])
    write_tape(tmp_path / "b", rows[::2], [])
    chunks = list(merge_tapes([Tape.open(tmp_path / "a"), Tape.open(tmp_path / "b")], batch_rows=500))
    assert sum(c.num_rows for c in chunks) == 7_500
    assert max(c.num_rows for c in chunks) <= 1_000
