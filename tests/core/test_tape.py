"""The tape format: write, reopen, verify, ordering checks and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import tape as tape_mod
from core.errors import TapeError
from core.labels import Label
from core.tape import Tape, TapeWriter, tape_schema


def _trades(ts: list[int], seq: list[int], start_id: int = 1) -> pa.Table:
    n = len(ts)
    return pa.table(
        {
            "exchange": ["binance"] * n,
            "symbol": ["BTCUSDT"] * n,
            "trade_id": list(range(start_id, start_id + n)),
            "price": [100.0 + i for i in range(n)],
            "qty": [0.5] * n,
            "side": ["buy", "sell"] * (n // 2) + ["buy"] * (n % 2),
            "ts_event": ts,
            "ts_recv": [None] * n,
            "seq": seq,
        }
    )


def _quotes(ts: list[int], seq: list[int]) -> pa.Table:
    n = len(ts)
    return pa.table(
        {
            "exchange": ["coinbase"] * n,
            "symbol": ["BTC-USD"] * n,
            "bid_px": [99.0] * n,
            "bid_qty": [1.0] * n,
            "ask_px": [101.0] * n,
            "ask_qty": [2.0] * n,
            "update_id": list(range(n)),
            "ts_event": ts,
            "ts_recv": [t + 5 for t in ts],
            "seq": seq,
        }
    )


def test_write_then_open_round_trips_rows_and_manifest(tmp_path: Path) -> None:
    label = Label(
        kind="whale",
        detector="MOD-001",
        exchange="binance",
        symbol="BTCUSDT",
        start_us=10,
        end_us=10,
        event_ids=("trade:binance:BTCUSDT:1",),
    )
    with TapeWriter(tmp_path / "t") as writer:
        writer.write("trade", _trades([10, 30], [0, 2]))
        writer.write("quote", _quotes([20], [1]))
        manifest = writer.close(source="synthetic", seed=7, labels=[label])
    tape = Tape.open(tmp_path / "t")
    tape.verify()
    assert tape.manifest == manifest
    assert manifest.rows == {"trade": 2, "quote": 1}
    assert (manifest.start_us, manifest.end_us) == (10, 30)
    assert manifest.exchanges == ["binance", "coinbase"]
    assert manifest.symbols == ["BTC-USD", "BTCUSDT"]
    assert tape.read("trade").to_pylist() == _trades([10, 30], [0, 2]).cast(tape_schema("trade")).to_pylist()
    assert tape.read("quote").column("ts_recv").to_pylist() == [25]
    assert tape.manifest.labels[0].event_ids == ("trade:binance:BTCUSDT:1",)


def test_unsorted_batch_is_rejected(tmp_path: Path) -> None:
    with TapeWriter(tmp_path / "t") as writer, pytest.raises(TapeError, match="not sorted"):
        writer.write("trade", _trades([30, 10], [0, 1]))


def test_batch_older_than_the_previous_one_is_rejected(tmp_path: Path) -> None:
    with TapeWriter(tmp_path / "t") as writer:
        writer.write("trade", _trades([10, 20], [0, 1]))
        with pytest.raises(TapeError, match="out of order"):
            writer.write("trade", _trades([15], [2], start_id=3))


def test_wrong_schema_names_the_problem(tmp_path: Path) -> None:
    with TapeWriter(tmp_path / "t") as writer, pytest.raises(TapeError, match="does not match"):
        writer.write("trade", pa.table({"price": [1.0]}))


def test_existing_tape_is_not_overwritten_by_accident(tmp_path: Path) -> None:
    with TapeWriter(tmp_path / "t") as writer:
        writer.write("trade", _trades([1], [0]))
        writer.close(source="synthetic")
    with pytest.raises(TapeError, match="already holds a tape"):
        TapeWriter(tmp_path / "t")


def test_a_tape_without_manifest_or_with_changed_files_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TapeError, match=r"no manifest\.json"):
        Tape.open(tmp_path)
    with TapeWriter(tmp_path / "t") as writer:
        writer.write("trade", _trades([1, 2], [0, 1]))
        writer.close(source="synthetic")
    part = tmp_path / "t" / "trade" / "part-00000.parquet"
    part.write_bytes(part.read_bytes() + b"x")
    with pytest.raises(TapeError, match="checksum mismatch"):
        Tape.open(tmp_path / "t").verify()
    part.unlink()
    with pytest.raises(TapeError, match="missing"):
        Tape.open(tmp_path / "t")


def test_manifest_with_unknown_key_is_refused(tmp_path: Path) -> None:
    with TapeWriter(tmp_path / "t") as writer:
        writer.write("trade", _trades([1], [0]))
        writer.close(source="synthetic")
    path = tmp_path / "t" / "manifest.json"
    data = json.loads(path.read_text())
    data["surprise"] = 1
    path.write_text(json.dumps(data))
    with pytest.raises(TapeError, match="not a valid tape manifest"):
        Tape.open(tmp_path / "t")


@settings(max_examples=25)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=1_000_000), min_size=1, max_size=300),
    batch=st.integers(min_value=1, max_value=64),
)
def test_batches_stream_back_in_order_across_parts(
    tmp_path_factory: pytest.TempPathFactory, gaps: list[int], batch: int
) -> None:
    ts = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    out = tmp_path_factory.mktemp("t") / "tape"
    old = tape_mod.PART_ROWS
    tape_mod.PART_ROWS = 50  # force several parts
    try:
        with TapeWriter(out) as writer:
            for start in range(0, len(ts), batch):
                chunk = ts[start : start + batch]
                writer.write("trade", _trades(chunk, list(range(start, start + len(chunk))), start + 1))
            writer.close(source="synthetic")
    finally:
        tape_mod.PART_ROWS = old
    tape = Tape.open(out)
    tape.verify()
    back = [row for b in tape.iter_batches("trade", batch_rows=7) for row in b.column("ts_event").to_pylist()]
    assert back == ts
    assert tape.manifest.rows["trade"] == len(ts)
