"""Historical loader: a tape into the bronze tables, twice, leaves one copy."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.config import Config, RuntimeSettings
from pipeline.jobs.loader import load_tape
from pipeline.sinks.iceberg import IcebergSink
from replay.tape import TapeWriter, tape_schema

DAY = 86_400_000_000
T0 = 19_000 * DAY  # 2022-01-08


def write_tape(path: Path, day: int, n: int) -> Path:
    with TapeWriter(path) as w:
        trades = [
            {
                "exchange": "binance",
                "symbol": "BTCUSDT",
                "trade_id": i,
                "price": 100.0 + i,
                "qty": 1.0,
                "side": "buy",
                "ts_event": T0 + day * DAY + i * 1000,
                "ts_recv": None,
                "seq": 2 * i,
            }
            for i in range(n)
        ]
        quotes = [
            {
                "exchange": "binance",
                "symbol": "BTCUSDT",
                "bid_px": 99.0,
                "bid_qty": 1.0,
                "ask_px": 101.0,
                "ask_qty": 1.0,
                "update_id": i,
                "ts_event": T0 + day * DAY + i * 1000 + 1,
                "ts_recv": None,
                "seq": 2 * i + 1,
            }
            for i in range(n)
        ]
        w.write("trade", pa.Table.from_pylist(trades, schema=tape_schema("trade")))
        w.write("quote", pa.Table.from_pylist(quotes, schema=tape_schema("quote")))
        w.close(source="synthetic")
    return path


@pytest.fixture
def sink(config: Config, tmp_path: Path) -> IcebergSink:
    cfg = config.model_copy(update={"runtime": RuntimeSettings(state_dir=tmp_path / "state")})
    return IcebergSink(cfg)


def test_loading_the_same_day_twice_leaves_one_copy(sink: IcebergSink, tmp_path: Path) -> None:
    day0 = write_tape(tmp_path / "day0", 0, 50)
    day1 = write_tape(tmp_path / "day1", 1, 30)
    first = load_tape(day0, sink)
    assert first.rows == {"trades": 50, "quotes": 50} and len(first.days) == 1
    load_tape(day1, sink)
    load_tape(day0, sink)
    trades = sink.read("trades")
    quotes = sink.read("quotes")
    assert trades.num_rows == 80 and quotes.num_rows == 80
    assert len(set(trades["ts_event"].to_pylist())) == 80
    assert set(trades["shard_id"].to_pylist()) == {"tape"}
    # fixed-width sequence numbers: string order is tape order
    seqs = [
        s
        for _, s in sorted(
            zip(trades["ts_event"].to_pylist(), trades["sequence_number"].to_pylist(), strict=True)
        )
    ]
    assert seqs == sorted(seqs) and len({len(s) for s in seqs}) == 1
