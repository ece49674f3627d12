"""Untrusted and malformed recorded files through every reader: zip and gzip bombs, member paths that
escape, huge lines, invalid UTF-8, truncation, wrong columns, mixed time units. Each ends in a clear
``ReaderError`` or, with ``skip_bad``, in counted rejects whose numbers reconcile: never another
exception, never a hang."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import ReaderError
from replay.readers import import_files, untrusted

T_MS = 1_700_000_000_000


def binance_csv(n: int) -> bytes:
    return "".join(f"{i},100.5,0.1,10.05,{T_MS + i},True,True\n" for i in range(1, n + 1)).encode()


def binance_ws(n: int) -> bytes:
    lines = []
    for i in range(1, n + 1):
        data = {"e": "trade", "E": T_MS + i, "s": "BTCUSDT", "t": i, "p": "100.5", "q": "0.1",
                "T": T_MS + i, "m": True}
        lines.append(f"{(T_MS + i) * 1_000_000} " + json.dumps({"stream": "btcusdt@trade", "data": data}))
    return ("\n".join(lines) + "\n").encode()


def coinbase_ws(n: int) -> bytes:
    lines = []
    for i in range(1, n + 1):
        msg = {"type": "match", "trade_id": i, "side": "sell", "size": "0.1", "price": "100.5",
               "product_id": "BTC-USD", "sequence": 100 + i, "time": f"2023-11-14T22:13:20.{i:06d}Z"}
        lines.append(f"wss://ws-feed.pro.coinbase.com <- 1700000000.{i:06d}: {json.dumps(msg)}")
    return ("\n".join(lines) + "\n").encode()


def tardis_csv(n: int) -> bytes:
    head = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
    rows = "".join(
        f"binance-futures,BTCUSDT,{(T_MS + i) * 1000},{(T_MS + i) * 1000 + 5},{i},buy,100.5,0.1\n"
        for i in range(1, n + 1)
    )
    return (head + rows).encode()


def _zip(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, data)
    return out.getvalue()


# (file name, format, content builder, how it is packed)
FORMATS: dict[str, tuple[str, str, Callable[[int], bytes], str]] = {
    "binance-csv": ("BTCUSDT-trades-2023-11-14.csv", "binance-csv", binance_csv, "plain"),
    "binance-zip": ("BTCUSDT-trades-2023-11-14.zip", "binance-csv", binance_csv, "zip"),
    "binance-ws": ("capture.txt", "binance-ws", binance_ws, "plain"),
    "binance-ws-gz": ("capture.gz", "binance-ws", binance_ws, "gzip"),
    "coinbase-ws": ("COINBASE.ws.1.0", "coinbase-ws", coinbase_ws, "plain"),
    "tardis": ("tardis_trades.csv", "tardis-csv", tardis_csv, "plain"),
    "tardis-gz": ("tardis_trades.csv.gz", "tardis-csv", tardis_csv, "gzip"),
}


def _pack(how: str, name: str, data: bytes) -> bytes:
    if how == "zip":
        return _zip(name.replace(".zip", ".csv"), data)
    if how == "gzip":
        return gzip.compress(data)
    return data


def test_every_format_reads_its_clean_sample(tmp_path: Path) -> None:
    for key, (name, fmt, build, how) in FORMATS.items():
        path = tmp_path / key / name
        path.parent.mkdir()
        path.write_bytes(_pack(how, name, build(20)))
        result = import_files([path], tmp_path / key / "tape", fmt=fmt)
        assert result.manifest.rows == {"trade": 20}, key


# --- bombs, escaping paths, huge lines, invalid UTF-8 ----------------------------------------------


@pytest.fixture
def small_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Caps small enough to test with megabytes instead of gigabytes (the logic is the same)."""
    monkeypatch.setattr(untrusted, "RATIO_FLOOR_BYTES", 1 << 20)
    monkeypatch.setattr(untrusted, "MAX_UNCOMPRESSED_BYTES", 32 << 20)


@pytest.mark.parametrize("key", ["binance-zip", "binance-ws-gz", "tardis-gz"])
def test_a_compression_bomb_is_refused_by_its_ratio(tmp_path: Path, small_caps: None, key: str) -> None:
    name, fmt, build, how = FORMATS[key]
    path = tmp_path / name
    # a valid start, then 16 MiB of one repeated line: thousands of times smaller compressed
    body = build(5) + build(1).splitlines(keepends=True)[-1] * ((16 << 20) // len(build(1)))
    path.write_bytes(_pack(how, name, body))
    with pytest.raises(ReaderError, match=r"refused: .* \(more than 200x; a zip bomb\?\)"):
        import_files([path], tmp_path / "tape", fmt=fmt)
    assert not (tmp_path / "tape").exists()


def test_a_huge_member_is_refused_by_its_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(untrusted, "MAX_UNCOMPRESSED_BYTES", 1 << 20)
    path = tmp_path / "BTCUSDT-trades-2023-11-14.zip"
    path.write_bytes(_zip("BTCUSDT-trades-2023-11-14.csv", binance_csv(40_000)))  # ~1.7 MB
    with pytest.raises(ReaderError, match=r"decompresses to more than 1,048,576 bytes"):
        import_files([path], tmp_path / "tape")


@pytest.mark.parametrize("member", ["../../evil.csv", "/etc/evil.csv", "C:\\evil.csv", "a/../../evil.csv"])
def test_zip_members_that_escape_are_refused(tmp_path: Path, member: str) -> None:
    path = tmp_path / "BTCUSDT-trades-2023-11-14.zip"
    path.write_bytes(_zip(member, binance_csv(3)))
    with pytest.raises(ReaderError, match="points outside the archive"):
        import_files([path], tmp_path / "tape")


@pytest.mark.parametrize("key", ["binance-ws", "binance-ws-gz", "coinbase-ws"])
def test_huge_lines_and_invalid_utf8_are_bad_lines(tmp_path: Path, key: str) -> None:
    name, fmt, build, how = FORMATS[key]
    good = build(4).splitlines(keepends=True)
    huge = b"1700000000000000000 " + b"x" * (untrusted.MAX_LINE_BYTES + 10) + b"\n"
    body = b"".join([good[0], huge, good[1], b"\xff\xfe not utf-8 \xc3\x28\n", good[2], good[3]])
    path = tmp_path / name
    path.write_bytes(_pack(how, name, body))
    with pytest.raises(ReaderError, match=r":2: longer than 1,048,576 bytes"):
        import_files([path], tmp_path / "strict", fmt=fmt)
    result = import_files([path], tmp_path / "lenient", fmt=fmt, skip_bad=True)
    assert (result.stats.bad, result.manifest.rows, result.stats.lines) == (2, {"trade": 4}, 6)
    assert result.reject_path is not None
    rejects = result.reject_path.read_text().splitlines()
    assert [r.split("\t")[0].rsplit(":", 1)[1] for r in rejects] == ["2", "4"]
    assert all(len(r) < 1000 for r in rejects)  # the huge line is not copied whole


# --- generated malformed files ---------------------------------------------------------------------


def _mutations() -> st.SearchStrategy[tuple[str, int, bytes]]:
    return st.tuples(
        st.sampled_from(["truncate", "garbage", "wrong_columns", "micro_seconds", "blank_lines", "cut_line"]),
        st.integers(min_value=0, max_value=10_000),
        st.binary(min_size=1, max_size=40),
    )


def _mutate(data: bytes, how: str, at: int, noise: bytes) -> bytes:
    lines = data.splitlines(keepends=True)
    i = at % len(lines)
    if how == "truncate":
        return data[: at % (len(data) + 1)]
    if how == "garbage":
        return b"".join([*lines[:i], noise + b"\n", *lines[i:]])
    if how == "wrong_columns":
        return b"".join([*lines[:i], lines[i].replace(b",", b",,", 2), *lines[i + 1 :]])
    if how == "micro_seconds":  # one line's times in µs while the file's are ms (or ns for µs files)
        return b"".join([*lines[:i], lines[i].replace(b"17000000", b"17000000000", 1), *lines[i + 1 :]])
    if how == "blank_lines":
        return b"".join([*lines[:i], b"\n\n", *lines[i:]])
    return b"".join([*lines[:i], lines[i][: len(lines[i]) // 2], *lines[i + 1 :]])


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.sampled_from(sorted(FORMATS)),
    where=st.sampled_from(["content", "packed"]),
    mutation=_mutations(),
)
def test_malformed_files_end_in_a_clear_error_or_counted_rejects(
    tmp_path_factory: pytest.TempPathFactory, key: str, where: str, mutation: tuple[str, int, bytes]
) -> None:
    name, fmt, build, how = FORMATS[key]
    tmp = tmp_path_factory.mktemp("bad")
    content = build(30)
    if where == "content":
        data = _pack(how, name, _mutate(content, *mutation))
    else:  # the compressed bytes themselves are damaged (a plain file: the same as content)
        data = _mutate(_pack(how, name, content), *mutation)
    path = tmp / name
    path.write_bytes(data)
    for skip_bad in (False, True):
        out = tmp / f"tape-{skip_bad}"
        try:
            result = import_files([path], out, fmt=fmt, skip_bad=skip_bad)
        except ReaderError as e:
            assert e.path == str(path) and e.problem  # names the file and the problem
            assert not (out / "manifest.json").exists()
            continue
        rows = sum(result.manifest.rows.values())
        assert rows == sum(result.stats.events.values())
        assert rows <= 31  # nothing invented (one garbage line may parse as an extra trade)
        if skip_bad and result.reject_path is not None and result.reject_path.exists():
            rejected = result.reject_path.read_text(errors="replace").count(f"{path}:")
            assert rejected == result.stats.bad
