"""Binance public-data files (data.binance.vision): ``trades``, ``aggTrades`` and ``bookTicker``,
spot and USD-M futures, as plain CSV or the daily ``.zip``, with or without a header row.

The columns used sit at the same positions in every variant (spot files have one more trailing column):

- trades: ``id, price, qty, quote_qty, time, is_buyer_maker[, is_best_match]``
- aggTrades: ``agg_trade_id, price, quantity, first_trade_id, last_trade_id, time, is_buyer_maker[, ...]``
  (the aggregate id is the trade id)
- bookTicker: ``update_id, best_bid_price, best_bid_qty, best_ask_price, best_ask_qty, transaction_time,
  event_time``

The file kind and symbol come from the Binance file name (``BTCUSDT-aggTrades-2025-01-01.csv``), else
from the header or the column layout. Futures are recognised by ``futures``, ``/um/`` or ``/usdm/`` (the
fetch cache) in the path, a 6-column trades file, a header with ``transact_time``, or a bookTicker file.
The time unit (spot switched to µs on 2025-01-01) is taken from the file's first row and every row is
checked against it.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import IO, Any

import polars as pl
import pyarrow as pa

from core.errors import ReaderError
from core.events import SCHEMAS, EventKind
from pipeline.connectors.binance import FUTURES, SPOT
from replay.readers.base import BadLines, Chunk, Reader, Stats, register
from replay.readers.csvio import check_times, iter_typed, time_unit
from replay.readers.untrusted import BoundedStream, check_member_name

_NAME = re.compile(r"^([A-Z0-9]+)-(trades|aggTrades|bookTicker)-", re.IGNORECASE)
_KINDS = {"trades": "trades", "aggtrades": "aggTrades", "bookticker": "bookTicker"}
_TIME_COL = {"trades": 4, "aggTrades": 5, "bookTicker": 5}
_NEEDED = {"trades": 6, "aggTrades": 7, "bookTicker": 6}
"""Columns a row of each kind must have: up to the time, and for trades the buyer-maker flag after it."""


@register
class BinanceCsvReader(Reader):
    """Binance public-data CSV and zip files."""

    name = "binance-csv"
    source = "binance-csv"

    @classmethod
    def sniff(cls, path: Path, head: str) -> bool:
        if path.suffix.lower() == ".zip" or _NAME.match(path.name):
            return True
        first = head.splitlines()[0] if head else ""
        return first.count(",") in (5, 6, 7) and first.split(",")[0].strip().isdigit()

    def read(self, path: Path, bad: BadLines, stats: Stats) -> Iterator[Chunk]:
        with tempfile.TemporaryDirectory(prefix="coattail-zip-") as tmp:
            plain = _unzip(path, Path(tmp)) if path.suffix.lower() == ".zip" else path
            with open(plain, "rb") as fh:
                first = fh.readline(65_536).decode("utf-8", "replace").strip()
            if not first:
                raise ReaderError(str(path), None, "the file is empty")
            cells = [c.strip() for c in first.split(",")]
            header = not cells[0].lstrip("-").isdigit()
            kind = _kind(path, cells, header)
            if len(cells) < _NEEDED[kind]:
                need = _NEEDED[kind]
                raise ReaderError(str(path), 1, f"{kind} needs at least {need} columns, found {len(cells)}")
            exchange = _exchange(path, kind, cells, header)
            symbol = _symbol(path)
            names = [f"c{i}" for i in range(len(cells))]
            yield from _convert(plain, str(path), names, kind, exchange, symbol, header, bad, stats)


def _unzip(path: Path, tmp: Path) -> Path:
    """The zip's one CSV member, copied out (streamed) so it can be read like a plain file."""
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                check_member_name(str(path), name)
            members = [m for m in zf.infolist() if m.filename.lower().endswith(".csv")]
            if len(members) != 1:
                names = [m.filename for m in members]
                raise ReaderError(str(path), None, f"expected one .csv inside the zip, found {names}")
            member = members[0]
            out = tmp / Path(member.filename).name
            with (
                BoundedStream(zf.open(member), lambda: member.compress_size, str(path)) as src,
                open(out, "wb") as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 20)
            return out
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:
        raise ReaderError(str(path), None, f"not a readable zip (truncated or corrupt?): {e}") from e


def _open_bytes(path: Path) -> IO[bytes]:
    return open(path, "rb")


def _kind(path: Path, cells: list[str], header: bool) -> str:
    m = _NAME.match(path.name)
    if m:
        return _KINDS[m.group(2).lower()]
    if header:
        first = cells[0].lower()
        if "agg" in first:
            return "aggTrades"
        if "update" in first:
            return "bookTicker"
        return "trades"
    n = len(cells)
    bools = [c.lower() in ("true", "false") for c in cells]
    if n == 6 or (n == 7 and bools[5] and bools[6]):
        return "trades"
    if n == 8 or (n == 7 and bools[6]):
        return "aggTrades"
    if n == 7:
        return "bookTicker"
    raise ReaderError(str(path), 1, f"cannot tell trades, aggTrades or bookTicker from {n} columns")


def _exchange(path: Path, kind: str, cells: list[str], header: bool) -> str:
    text = str(path).lower()
    futures = (
        "futures" in text
        or "/um/" in text
        or "/usdm/" in text
        or kind == "bookTicker"
        or (kind == "trades" and len(cells) == 6)
        or (kind == "aggTrades" and len(cells) == 7)
        or (header and any("transact_time" in c.lower() for c in cells))
    )
    return FUTURES if futures else SPOT


def _symbol(path: Path) -> str:
    m = _NAME.match(path.name)
    if not m:
        raise ReaderError(
            str(path),
            None,
            "cannot tell the symbol: name the file like Binance does, e.g. BTCUSDT-trades-2025-01-01.csv",
        )
    return m.group(1).upper()


def _convert(
    plain: Path,
    path: str,
    names: list[str],
    kind: str,
    exchange: str,
    symbol: str,
    header: bool,
    bad: BadLines,
    stats: Stats,
) -> Iterator[Chunk]:
    tcol = names[_TIME_COL[kind]]
    types: dict[str, Any]
    if kind == "bookTicker":
        types = {
            names[0]: pl.Int64,
            names[1]: pl.Float64,
            names[2]: pl.Float64,
            names[3]: pl.Float64,
            names[4]: pl.Float64,
            tcol: pl.Int64,
        }
    else:
        types = {
            names[0]: pl.Int64,
            names[1]: pl.Float64,
            names[2]: pl.Float64,
            tcol: pl.Int64,
            names[_TIME_COL[kind] + 1]: pl.Boolean,
        }
    unit: tuple[int, tuple[int, int]] | None = None
    for frame in iter_typed(partial(_open_bytes, plain), path, names, types, bad, header=header):
        stats.lines += frame.height
        if frame.height == 0:
            continue
        if unit is None:
            unit = time_unit(path, int(frame[tcol][0]))
        frame = check_times(frame, tcol, unit[1], path, bad)
        ts = (frame[tcol] * unit[0]).alias("ts_event")
        n = frame.height
        if kind == "bookTicker":
            out = pl.DataFrame(
                {
                    "bid_px": frame[names[1]],
                    "bid_qty": frame[names[2]],
                    "ask_px": frame[names[3]],
                    "ask_qty": frame[names[4]],
                    "update_id": frame[names[0]],
                    "ts_event": ts,
                }
            )
            ev: EventKind = "quote"
        else:
            maker = frame[names[_TIME_COL[kind] + 1]]
            out = pl.DataFrame(
                {
                    "trade_id": frame[names[0]],
                    "price": frame[names[1]],
                    "qty": frame[names[2]],
                    "side": pl.Series(["buy", "sell"]).gather(maker.cast(pl.UInt32)),
                    "ts_event": ts,
                }
            )
            ev = "trade"
        table = out.to_arrow()
        table = (
            table.append_column("exchange", pa.repeat(exchange, n))
            .append_column("symbol", pa.repeat(symbol, n))
            .append_column("ts_recv", pa.nulls(n, pa.int64()))
        )
        stats.events[ev] += n
        yield Chunk(ev, table.select(SCHEMAS[ev].names).cast(SCHEMAS[ev]))
