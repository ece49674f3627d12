"""Historical loader: a tape into the bronze tables, twice, leaves one copy and touches nothing else."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.events import TRADE_SCHEMA
from core.tape import Tape, TapeWriter, tape_schema
from pipeline.config import Config, RuntimeSettings
from pipeline.jobs.loader import bronze_batches, load_tape
from pipeline.sinks.iceberg import IcebergSink
from pipeline.tables import TRADES
from pipeline.testkit import trade
from replay.readers.importer import import_files
from tests.conftest import REAL_TAPES

HOUR = 3_600_000_000
DAY = 24 * HOUR
T0 = 19_000 * DAY  # 2022-01-08


def write_tape(path: Path, day: int, n: int, hour: int = 0) -> Path:
    with TapeWriter(path) as w:
        trades = [
            {
                "exchange": "binance",
                "symbol": "BTCUSDT",
                "trade_id": i,
                "price": 100.0 + i,
                "qty": 1.0,
                "side": "buy",
                "ts_event": T0 + day * DAY + hour * HOUR + i * 1000,
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
                "ts_event": T0 + day * DAY + hour * HOUR + i * 1000 + 1,
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
    assert first.rows == {"trades": 50, "quotes": 50, "transfers": 0} and len(first.days) == 1
    load_tape(day1, sink)
    load_tape(day0, sink)
    trades = sink.read("trades")
    quotes = sink.read("quotes")
    assert trades.num_rows == 80 and quotes.num_rows == 80
    assert len(set(trades["ts_event"].to_pylist())) == 80
    assert set(trades["shard_id"].to_pylist()) == {"tape"}
    # fixed-width sequence numbers: string order is tape order (ts_event, seq)
    seqs = [
        s
        for _, s in sorted(
            zip(trades["ts_event"].to_pylist(), trades["sequence_number"].to_pylist(), strict=True)
        )
    ]
    assert seqs == sorted(seqs) and len({len(s) for s in seqs}) == 1


def test_sequence_numbers_follow_ts_event_then_seq_not_seq_alone(tmp_path: Path) -> None:
    """An imported tape numbers ``seq`` in file order, which need not be ``ts_event`` order."""
    rows = [trade(i, 100.0, 1.0, T0 + 10 * i)[1] for i in range(3)]
    data = pa.Table.from_pylist(rows, schema=TRADE_SCHEMA).append_column(
        "seq", pa.array([7, 3, 5], pa.int64())
    )
    pq.write_table(data, tmp_path / "t.parquet")
    manifest = {"files": {"trade": ["t.parquet"]}, "start_us": T0, "source": "test"}
    (table,) = list(bronze_batches(tmp_path, "trade", manifest))
    order = sorted(range(3), key=lambda i: table["sequence_number"][i].as_py())
    assert order == [0, 1, 2]


def streamed_trade(ts_event: int) -> pa.Table:
    """One bronze row as the streaming pipeline writes it: a Kinesis shard and sequence number."""
    row = {
        "exchange": "binance",
        "symbol": "BTCUSDT",
        "trade_id": 999_999,
        "price": 100.0,
        "qty": 2.0,
        "side": "sell",
        "ts_event": ts_event,
        "ts_recv": ts_event + 5,
        "ts_sent": ts_event + 7,
        "ts_ingest": ts_event + 9,
        "shard_id": "shardId-000000000000",
        "sequence_number": "49" + "6" * 54,
        "sub_sequence": 0,
    }
    return pa.Table.from_pylist([row], schema=TRADES.schema)


def test_reloading_a_tape_keeps_other_tapes_of_the_day_and_streamed_rows(
    sink: IcebergSink, tmp_path: Path
) -> None:
    morning = write_tape(tmp_path / "morning", 0, 40, hour=8)
    afternoon = write_tape(tmp_path / "afternoon", 0, 25, hour=14)
    load_tape(morning, sink)
    # a streamed row inside the morning tape's time span, same day and instrument
    streamed_ts = T0 + 8 * HOUR + 10 * 1000 + 500
    sink.catalog.load_table(f"{sink.namespace}.trades").append(
        TRADES.with_partition_columns(streamed_trade(streamed_ts))
    )
    load_tape(afternoon, sink)
    again = load_tape(morning, sink)
    assert again.days == ["2022-01-08"] and again.rows == {"trades": 40, "quotes": 40, "transfers": 0}
    trades, quotes = sink.read("trades"), sink.read("quotes")
    expected = sorted(
        [T0 + 8 * HOUR + i * 1000 for i in range(40)] + [T0 + 14 * HOUR + i * 1000 for i in range(25)]
    )
    tape_trades = trades.filter(pc.equal(trades["shard_id"], "tape"))
    assert sorted(tape_trades["ts_event"].to_pylist()) == expected  # each row of A and B exactly once
    assert sorted(quotes["ts_event"].to_pylist()) == [ts + 1 for ts in expected]
    streamed = trades.filter(pc.not_equal(trades["shard_id"], "tape")).to_pylist()
    assert [(r["trade_id"], r["ts_event"], r["shard_id"]) for r in streamed] == [
        (999_999, streamed_ts, "shardId-000000000000")
    ]


def test_real_tapes_split_in_two_load_each_row_once(sink: IcebergSink, tmp_path: Path) -> None:
    # the real Tardis sample cut at its middle trade into an earlier and a later tape of the same day
    whole = tmp_path / "whole"
    import_files(
        [REAL_TAPES / "tardis" / "tardis_trades.csv", REAL_TAPES / "tardis" / "tardis_quotes.csv"], whole
    )
    tape = Tape.open(whole)
    trades, quotes = tape.read("trade"), tape.read("quote")
    cut = sorted(trades["ts_event"].to_pylist())[trades.num_rows // 2]
    halves = []
    for name, keep in (("early", pc.less), ("late", pc.greater_equal)):
        with TapeWriter(tmp_path / name) as w:
            w.write("trade", trades.filter(keep(trades["ts_event"], cut)))
            w.write("quote", quotes.filter(keep(quotes["ts_event"], cut)))
            w.close(source="tardis")
        halves.append(tmp_path / name)
    early, late = halves
    load_tape(early, sink)
    load_tape(late, sink)
    result = load_tape(early, sink)
    assert len(result.days) == 1
    loaded = sink.read("trades")
    assert sorted(loaded["trade_id"].to_pylist()) == sorted(trades["trade_id"].to_pylist())
    assert sink.read("quotes").num_rows == quotes.num_rows


@pytest.fixture(scope="module")
def three_tapes(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, list[int]]]:
    """Two tapes of one day and instrument (morning, afternoon) and one of the next day, with their
    trade times."""
    root = tmp_path_factory.mktemp("tapes")
    spans = [(0, 8, 12), (0, 14, 7), (1, 3, 5)]
    return [
        (
            write_tape(root / f"t{i}", day, n, hour=hour),
            [T0 + day * DAY + hour * HOUR + j * 1000 for j in range(n)],
        )
        for i, (day, hour, n) in enumerate(spans)
    ]


@settings(max_examples=8)
@given(order=st.lists(st.integers(0, 2), min_size=1, max_size=5))
def test_any_load_order_holds_each_loaded_row_once(
    config: Config, three_tapes: list[tuple[Path, list[int]]], order: list[int]
) -> None:
    with tempfile.TemporaryDirectory() as state:
        cfg = config.model_copy(update={"runtime": RuntimeSettings(state_dir=Path(state))})
        sink = IcebergSink(cfg)
        for i in order:
            load_tape(three_tapes[i][0], sink)
        expected = sorted(ts for i in set(order) for ts in three_tapes[i][1])
        assert sorted(sink.read("trades")["ts_event"].to_pylist()) == expected


def test_transfers_load_under_the_key_the_pipeline_gives_them(sink: IcebergSink, tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parents[2] / "data" / "onchain"
    csv = sample / "export-address-token-0x003dc32fe920a4aaeed12dc87e145f030aa753f3.csv"
    import_files([REAL_TAPES / "tardis" / "tardis_trades.csv", csv], tmp_path / "t")
    tape = Tape.open(tmp_path / "t")
    rows = tape.manifest.rows
    result = load_tape(tmp_path / "t", sink)
    assert result.rows == {"trades": rows["trade"], "quotes": 0, "transfers": rows["transfer"]}
    loaded = sink.read("transfers").to_pylist()
    keys = {r["asset"]: (r["exchange"], r["symbol"]) for r in loaded}
    # a stablecoin's flows count for its configured market (config/tokens.yaml: USDC -> BTC)
    assert keys["BTC"] == keys["USDC"] == ("binance", "BTCUSDT")
    assert ("binance", "BTCUSDT") in result.instruments
    again = load_tape(tmp_path / "t", sink)  # idempotent for transfers too
    assert again.rows == result.rows and sink.read("transfers").num_rows == rows["transfer"]
