"""Every recorded format: the real samples, files written here, round trips and bad input."""

from __future__ import annotations

import gzip
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import ReaderError
from core.tape import Tape
from replay.readers import detect_format, import_files
from tests.conftest import REAL_TAPES
from tests.replay.readers.binance_files_kit import write_agg_trades, write_book_ticker, write_trades

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "fixtures" / "real"


def _check_tape(path: Path) -> Tape:
    tape = Tape.open(path)
    tape.verify()
    seqs: list[int] = []
    for kind in tape.manifest.kinds:
        t = tape.read(kind)
        keys = list(zip(t.column("ts_event").to_pylist(), t.column("seq").to_pylist(), strict=True))
        assert keys == sorted(keys)
        seqs += t.column("seq").to_pylist()
    assert len(seqs) == len(set(seqs))
    return tape


@pytest.mark.parametrize(
    ("name", "fmt", "rows", "exchanges"),
    [
        ("binance-ws/spot_btcusdt_20240808.gz", "binance-ws", {"trade": 9757, "quote": 28040}, ["binance"]),
        ("binance-ws/spot_btcusdt_20240809.gz", "binance-ws", None, ["binance"]),
        (
            "binance-ws/usdm_btcusdt_20240808.gz",
            "binance-ws",
            {"trade": 21313, "quote": 66089},
            ["binance-futures"],
        ),
        ("coinbase-ws/COINBASE.ws.28.0", "coinbase-ws", {"trade": 107}, ["coinbase"]),
        ("tardis/tardis_trades.csv", "tardis-csv", {"trade": 9999}, ["binance-futures"]),
        ("tardis/tardis_quotes.csv", "tardis-csv", {"quote": 9999}, ["binance-futures"]),
    ],
)
def test_every_real_sample_imports(
    tmp_path: Path, name: str, fmt: str, rows: dict[str, int] | None, exchanges: list[str]
) -> None:
    path = REAL_TAPES / name
    assert detect_format(path) == fmt
    result = import_files([path], tmp_path / "tape")
    assert result.stats.bad == 0
    if rows is not None:
        assert result.manifest.rows == rows
    assert result.manifest.exchanges == exchanges
    _check_tape(tmp_path / "tape")


def test_binance_capture_counts_skipped_streams_and_keeps_receive_times(tmp_path: Path) -> None:
    result = import_files([FIXTURES / "binance_ws_spot_btcusdt_20240808_head3000.gz"], tmp_path / "t")
    assert result.stats.skipped["depth@100ms"] > 0
    with gzip.open(FIXTURES / "binance_ws_spot_btcusdt_20240808_head3000.gz", "rt") as fh:
        lines = fh.read().splitlines()
    trades = [json.loads(ln.split(" ", 1)[1])["data"] for ln in lines if "@trade" in ln]
    table = Tape.open(tmp_path / "t").read("trade")
    assert table.num_rows == len(trades)
    assert sorted(table.column("trade_id").to_pylist()) == sorted(t["t"] for t in trades)
    assert all(r is not None for r in table.column("ts_recv").to_pylist())


def test_coinbase_recording_fixture_and_reported_gaps(tmp_path: Path) -> None:
    src = (FIXTURES / "coinbase_ws_28_head1500.txt").read_text().splitlines()
    matches = [ln for ln in src if '"type":"match"' in ln or '"type":"last_match"' in ln]
    # drop one match of a product that has a later one: its trade id becomes a gap
    dropped = next(i for i, ln in enumerate(matches) if '"SKL-USD"' in ln and '"type":"match"' in ln)
    kept = [ln for ln in src if ln != matches[dropped]]
    path = tmp_path / "cb.txt"
    path.write_text("\n".join(kept) + "\n")
    result = import_files([path], tmp_path / "t")
    assert result.manifest.rows == {"trade": len(matches) - 1}
    sides = Tape.open(tmp_path / "t").read("trade").column("side").to_pylist()
    maker = [json.loads(ln.split(": ", 1)[1])["side"] for ln in matches]
    assert sorted(sides) == sorted(
        {"buy": "sell", "sell": "buy"}[m] for i, m in enumerate(maker) if i != dropped
    )
    assert any("SKL-USD" in note and "missing" in note for note in result.stats.notes)


def test_tardis_fixtures_keep_exchange_and_local_time(tmp_path: Path) -> None:
    import_files(
        [FIXTURES / "tardis_trades_head1000.csv", FIXTURES / "tardis_quotes_head1000.csv"], tmp_path / "t"
    )
    tape = _check_tape(tmp_path / "t")
    assert tape.manifest.rows == {"trade": 1000, "quote": 1000}
    first = tape.read("trade").slice(0, 1).to_pylist()[0]
    assert first == {
        "exchange": "binance-futures",
        "symbol": "BTCUSDT",
        "trade_id": 42377944,
        "price": 9682.0,
        "qty": 0.132,
        "side": "buy",
        "ts_event": 1582329602111000,
        "ts_recv": 1582329602418379,
        "seq": first["seq"],
    }


# --- Binance public-data files written here --------------------------------------------------------


def _trades(n: int, t0: int = 1_735_689_600_000_000) -> list[dict[str, Any]]:
    return [
        {
            "trade_id": 1000 + i,
            "price": 93000.0 + i * 0.01,
            "qty": 0.001 * (i + 1),
            "side": "sell" if i % 3 else "buy",
            "ts_event": t0 + i * 1000,
        }
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("fname", "futures", "header", "unit", "exchange"),
    [
        ("BTCUSDT-trades-2024-12-31.csv", False, False, "ms", "binance"),
        ("BTCUSDT-trades-2025-01-01.csv", False, False, "us", "binance"),
        ("BTCUSDT-trades-2025-01-01.zip", False, False, "us", "binance"),
        ("BTCUSDT-trades-2024-06-01.csv", True, True, "ms", "binance-futures"),
        ("BTCUSDT-trades-2024-06-01.zip", True, True, "ms", "binance-futures"),
    ],
)
def test_binance_trades_files_round_trip(
    tmp_path: Path, fname: str, futures: bool, header: bool, unit: str, exchange: str
) -> None:
    rows = _trades(50)
    if unit == "ms":
        rows = [{**r, "ts_event": r["ts_event"] // 1000 * 1000} for r in rows]
    path = write_trades(tmp_path / fname, rows, futures=futures, header=header, unit=unit)
    assert detect_format(path) == "binance-csv"
    import_files([path], tmp_path / "t")
    got = Tape.open(tmp_path / "t").read("trade").drop_columns(["seq"]).to_pylist()
    assert got == [{"exchange": exchange, "symbol": "BTCUSDT", **r, "ts_recv": None} for r in rows]


@pytest.mark.parametrize(("futures", "header"), [(False, False), (True, True), (True, False)])
def test_binance_agg_trades(tmp_path: Path, futures: bool, header: bool) -> None:
    rows = [{**r, "ts_event": r["ts_event"] // 1000 * 1000} for r in _trades(20)]
    path = write_agg_trades(
        tmp_path / "ETHUSDT-aggTrades-2024-06-01.csv", rows, futures=futures, header=header
    )
    import_files([path], tmp_path / "t")
    got = Tape.open(tmp_path / "t").read("trade")
    assert got.column("trade_id").to_pylist() == [r["trade_id"] for r in rows]
    assert set(got.column("exchange").to_pylist()) == {"binance-futures" if futures else "binance"}


def test_binance_book_ticker_zip(tmp_path: Path) -> None:
    rows = [
        {
            "update_id": 10 + i,
            "bid_px": 100.0 + i,
            "bid_qty": 1.5,
            "ask_px": 100.5 + i,
            "ask_qty": 2.0,
            "ts_event": 1_717_200_000_000_000 + i * 1000,
        }
        for i in range(30)
    ]
    path = write_book_ticker(tmp_path / "BTCUSDT-bookTicker-2024-06-01.zip", rows, header=True)
    import_files([path], tmp_path / "t")
    got = Tape.open(tmp_path / "t").read("quote").drop_columns(["seq"]).to_pylist()
    assert got == [{"exchange": "binance-futures", "symbol": "BTCUSDT", **r, "ts_recv": None} for r in rows]


def test_tape_to_csv_to_tape_round_trip(tmp_path: Path) -> None:
    """A tape's trades written back as a Binance file and re-imported give the same trades."""
    import_files([FIXTURES / "tardis_trades_head1000.csv"], tmp_path / "a")
    first = Tape.open(tmp_path / "a").read("trade").to_pylist()
    path = write_trades(tmp_path / "BTCUSDT-trades-2020-02-22.csv", first, futures=True, header=True)
    import_files([path], tmp_path / "b")
    second = Tape.open(tmp_path / "b").read("trade").to_pylist()
    strip = [{k: v for k, v in r.items() if k not in ("ts_recv", "seq")} for r in first]
    assert [{k: v for k, v in r.items() if k not in ("ts_recv", "seq")} for r in second] == strip


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.integers(1, 2**40),
            st.floats(1e-6, 1e7, allow_nan=False),
            st.floats(1e-8, 1e5, allow_nan=False),
            st.sampled_from(["buy", "sell"]),
            st.integers(1_600_000_000_000, 1_900_000_000_000),
        ),
        min_size=1,
        max_size=40,
    ),
    st.booleans(),
)
def test_any_trades_survive_csv_and_come_out_sorted(tmp_path: Path, raw: list[Any], header: bool) -> None:
    rows = [{"trade_id": i, "price": p, "qty": q, "side": s, "ts_event": ms * 1000} for i, p, q, s, ms in raw]
    case = Path(tempfile.mkdtemp(dir=tmp_path))
    path = write_trades(case / "SOLUSDT-trades-2024-01-01.csv", rows, futures=False, header=header)
    out = case / "tape"
    import_files([path], out)
    got = Tape.open(out).read("trade")
    ts = got.column("ts_event").to_pylist()
    assert ts == sorted(ts)
    expect = sorted(
        (r["ts_event"], n, r["trade_id"], r["price"], r["qty"], r["side"]) for n, r in enumerate(rows)
    )
    assert (
        list(
            zip(
                ts,
                got.column("seq").to_pylist(),
                got.column("trade_id").to_pylist(),
                got.column("price").to_pylist(),
                got.column("qty").to_pylist(),
                got.column("side").to_pylist(),
                strict=True,
            )
        )
        == expect
    )


# --- bad input ---------------------------------------------------------------------------------------


def _good_lines(n: int = 5) -> list[str]:
    return [f"{i},100.5,0.1,10.05,{1_700_000_000_000 + i},True,True" for i in range(1, n + 1)]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("6,100.5,0.1,10.05,1700000000006", "expected 7 columns, found 5"),
        ("6,abc,0.1,10.05,1700000000006,True,True", "column c1: 'abc' is not a valid"),
        ("6,100.5,0.1,10.05,99,True,True", "timestamp 99 out of range"),
        ("6,100.5,,10.05,1700000000006,True,True", "column c2: missing"),
    ],
)
def test_bad_lines_name_file_line_and_problem(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "BTCUSDT-trades-2023-11-14.csv"
    path.write_text("\n".join([*_good_lines(), line, *_good_lines(2)]) + "\n")
    with pytest.raises(ReaderError) as err:
        import_files([path], tmp_path / "t")
    assert err.value.path == str(path)
    assert err.value.line == 6
    assert problem in err.value.problem
    assert not (tmp_path / "t" / "manifest.json").exists()


def test_skip_bad_counts_and_rejects(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-trades-2023-11-14.csv"
    bad = ["6,abc,0.1,10.05,1700000000006,True,True", "7,1,2", "8,100.5,0.1,10.05,1,True,True"]
    path.write_text("\n".join([*_good_lines(), *bad]) + "\n")
    result = import_files([path], tmp_path / "t", skip_bad=True)
    assert result.stats.bad == 3
    assert result.manifest.rows == {"trade": 5}
    assert result.reject_path is not None
    rejects = result.reject_path.read_text().splitlines()
    assert len(rejects) == 3
    assert all(str(path) in r for r in rejects)
    assert result.manifest.extra["import"]["bad_lines"] == 3


def test_bad_json_line_in_a_capture(tmp_path: Path) -> None:
    path = tmp_path / "cap.txt"
    ok = (
        '1723161254087896568 {"stream":"btcusdt@trade","data":'
        + json.dumps(
            {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 1, "p": "1", "q": "1", "T": 1723161255342, "m": True},
            separators=(",", ":"),
        )
        + "}"
    )
    path.write_text(ok + "\n" + ok.replace('"p":"1"', '"p":"x"') + "\n" + ok[:40] + "\n")
    with pytest.raises(ReaderError, match=r"cap.txt:2: field 'p'"):
        import_files([path], tmp_path / "t", fmt="binance-ws")
    result = import_files([path], tmp_path / "t2", fmt="binance-ws", skip_bad=True)
    assert (result.stats.bad, result.manifest.rows) == (2, {"trade": 1})


def test_truncated_zip(tmp_path: Path) -> None:
    path = write_trades(
        tmp_path / "BTCUSDT-trades-2024-01-01.zip", _trades(2000), futures=False, header=False
    )
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReaderError, match="zip"):
        import_files([path], tmp_path / "t")


@pytest.mark.parametrize(
    ("name", "first", "need"),
    [
        # the time column is there but not the buyer-maker flag after it (a file cut in its first line)
        ("BTCUSDT-trades-2024-01-01.csv", "1,100.5,0.1,10.05,1700000000001", 6),
        ("BTCUSDT-aggTrades-2024-01-01.csv", "1,100.5,0.1,1,1,1700000000001", 7),
        ("BTCUSDT-bookTicker-2024-01-01.csv", "1,100.5,0.1,100.6,0.2", 6),
    ],
)
def test_a_first_line_too_short_for_its_kind_is_refused(
    tmp_path: Path, name: str, first: str, need: int
) -> None:
    path = tmp_path / name
    path.write_text(first + "\n")
    with pytest.raises(ReaderError, match=f"needs at least {need} columns"):
        import_files([path], tmp_path / "t")
    assert not (tmp_path / "t" / "manifest.json").exists()


def test_empty_file_and_unknown_format(tmp_path: Path) -> None:
    empty = tmp_path / "BTCUSDT-trades-2024-01-01.csv"
    empty.write_text("")
    with pytest.raises(ReaderError, match="empty"):
        import_files([empty], tmp_path / "t")
    odd = tmp_path / "notes.txt"
    odd.write_text("hello world\n")
    with pytest.raises(ReaderError, match="unknown format"):
        import_files([odd], tmp_path / "t")
    with pytest.raises(ReaderError, match="unknown format 'nope'"):
        import_files([odd], tmp_path / "t", fmt="nope")


def test_zip_with_two_members(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-trades-2024-01-01.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.csv", "1,2,3\n")
        zf.writestr("b.csv", "1,2,3\n")
    with pytest.raises(ReaderError, match=r"one \.csv"):
        import_files([path], tmp_path / "t")


def test_large_input_spills_and_merges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inputs bigger than the in-memory budget go through sorted runs on disk with the same result."""
    from replay.readers import importer

    files = [FIXTURES / "binance_ws_usdm_btcusdt_20240808_head3000.gz"]
    import_files(files, tmp_path / "mem")
    monkeypatch.setattr(importer, "SPILL_ROWS", 500)
    import_files(files, tmp_path / "disk")
    for kind in ("trade", "quote"):
        a = Tape.open(tmp_path / "mem").read(kind)
        b = Tape.open(tmp_path / "disk").read(kind)
        assert a.equals(b)


@pytest.mark.parametrize(
    ("name", "exchange", "rows"),
    [
        ("BTCUSDT-trades-2020-02-22.csv", "binance-futures", 500),
        ("BTCUSDT-trades-2024-08-08.zip", "binance", 518),
        ("BTCUSDT-aggTrades-2024-08-08.csv", "binance", 300),
    ],
)
def test_binance_fixture_files(tmp_path: Path, name: str, exchange: str, rows: int) -> None:
    """Milliseconds and microseconds files land on the same µs time line."""
    path = REPO / "fixtures" / "binance" / name
    result = import_files([path], tmp_path / "t")
    assert result.manifest.exchanges == [exchange]
    assert result.manifest.rows == {"trade": rows}
    ts = Tape.open(tmp_path / "t").read("trade").column("ts_event").to_pylist()
    assert all(1_580_000_000_000_000 < t < 1_730_000_000_000_000 for t in ts)


def test_synthetic_tape_through_binance_files_and_capture(tmp_path: Path) -> None:
    """Synthetic tape -> Binance trades CSV and a futures WebSocket capture -> tapes with the same rows."""
    from pipeline.config import ConfigLoader
    from sim.generator import GenerateSpec, generate
    from sim.scenario import load_scenario

    spec = GenerateSpec(
        load_scenario("quiet-day"),
        ("BTCUSDT",),
        ("binance-futures",),
        1_767_225_600_000_000,
        600_000_000,
        3,
        0.01,
    )
    generate(spec, ConfigLoader().load("small", env={}), tmp_path / "syn")
    syn = Tape.open(tmp_path / "syn")
    trades = syn.read("trade").drop_columns(["seq"]).to_pylist()
    quotes = syn.read("quote").drop_columns(["seq"]).to_pylist()
    # Binance files carry ms times: compare on that grid
    ms_trades = [{**r, "ts_event": r["ts_event"] // 1000 * 1000} for r in trades]
    path = write_trades(tmp_path / "BTCUSDT-trades-2026-01-01.csv", ms_trades, futures=True, header=True)
    import_files([path], tmp_path / "csv")
    got = Tape.open(tmp_path / "csv").read("trade").drop_columns(["seq"]).to_pylist()
    assert sorted(got, key=lambda r: r["trade_id"]) == sorted(ms_trades, key=lambda r: r["trade_id"])

    lines = []
    for r in trades:
        data = {
            "e": "trade",
            "E": r["ts_event"] // 1000,
            "T": r["ts_event"],
            "s": r["symbol"],
            "t": r["trade_id"],
            "p": repr(r["price"]),
            "q": repr(r["qty"]),
            "X": "MARKET",
            "m": r["side"] == "sell",
        }
        lines.append((r["ts_event"] + 5, "btcusdt@trade", data))
    for r in quotes:
        data = {
            "e": "bookTicker",
            "u": r["update_id"],
            "s": r["symbol"],
            "b": repr(r["bid_px"]),
            "B": repr(r["bid_qty"]),
            "a": repr(r["ask_px"]),
            "A": repr(r["ask_qty"]),
            "T": r["ts_event"],
            "E": r["ts_event"],
        }
        lines.append((r["ts_event"] + 5, "btcusdt@bookTicker", data))
    lines.sort(key=lambda x: x[0])
    cap = tmp_path / "capture.gz"
    with gzip.open(cap, "wt") as fh:
        for recv, stream, data in lines:
            fh.write(f"{recv * 1000} {json.dumps({'stream': stream, 'data': data}, separators=(',', ':'))}\n")
    import_files([cap], tmp_path / "ws")
    ws = Tape.open(tmp_path / "ws")
    assert ws.read("trade").drop_columns(["seq", "ts_recv"]).to_pylist() == [
        {k: v for k, v in r.items() if k != "ts_recv"} for r in trades
    ]
    assert ws.read("quote").drop_columns(["seq", "ts_recv"]).to_pylist() == [
        {k: v for k, v in r.items() if k != "ts_recv"} for r in quotes
    ]


@settings(max_examples=60)
@given(
    st.lists(
        st.lists(st.integers(0, 50), min_size=0, max_size=60),
        min_size=1,
        max_size=5,
    ),
    st.integers(1, 7),
)
def test_merge_runs_is_a_sort(runs_ts: list[list[int]], batch: int) -> None:
    """Sorted runs merged batch by batch give the global (ts_event, seq) order."""
    from replay.readers.importer import merge_runs

    seq = 0
    runs = []
    expect = []
    for ts_list in runs_ts:
        rows = sorted((t, (seq := seq + 1)) for t in ts_list)
        expect += rows
        table = pa.table({"ts_event": [r[0] for r in rows], "seq": [r[1] for r in rows]}, schema=_KEY_SCHEMA)
        runs.append(iter([table.slice(i, batch) for i in range(0, max(table.num_rows, 1), batch)]))
    got: list[tuple[int, int]] = []
    for out in merge_runs(runs):
        got += list(zip(out["ts_event"].to_pylist(), out["seq"].to_pylist(), strict=True))
    assert got == sorted(expect)


_KEY_SCHEMA = pa.schema([pa.field("ts_event", pa.int64()), pa.field("seq", pa.int64())])


@pytest.mark.parametrize("bad_line", [1, 2500, 3501, 5000])
def test_bad_line_after_clean_batches_keeps_its_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad_line: int
) -> None:
    """The parallel reader hands over to the careful one at the first doubtful batch: lines stay exact."""
    from replay.readers import csvio

    monkeypatch.setattr(csvio, "BLOCK_BYTES", 4096)
    lines = [f"{i},100.5,0.1,10.05,{1_700_000_000_000 + i},True,True" for i in range(1, 5001)]
    lines[bad_line - 1] = lines[bad_line - 1].replace("100.5", "1O0.5")
    path = tmp_path / "BTCUSDT-trades-2023-11-14.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ReaderError) as err:
        import_files([path], tmp_path / "t")
    assert (err.value.line, err.value.problem) == (bad_line, "column c1: '1O0.5' is not a valid Float64")
    result = import_files([path], tmp_path / "t2", skip_bad=True)
    assert (result.stats.bad, result.manifest.rows) == (1, {"trade": 4999})
