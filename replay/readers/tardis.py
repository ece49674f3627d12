"""Tardis.dev normalized CSV: ``trades`` and ``quotes`` (``incremental_book_L2`` and others are not read).

- trades: ``exchange,symbol,timestamp,local_timestamp,id,side,price,amount``
- quotes: ``exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount``

Times are µs since the epoch; ``local_timestamp`` becomes ``ts_recv``; the exchange column is kept as it
is (``binance-futures``). Tardis quotes carry no update id: it is the row's line number in the file, so
quote ids are unique and increasing per file. A trade id must be an integer (exchanges with text ids
cannot be represented in the event schema and are reported as bad lines).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO

import polars as pl

from core.errors import ReaderError
from core.events import SCHEMAS, EventKind
from replay.readers.base import BadLines, Chunk, Reader, Stats, register
from replay.readers.csvio import US_RANGE, check_times, iter_typed
from replay.readers.untrusted import open_gzip

TRADES = ["exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount"]
QUOTES = [
    "exchange",
    "symbol",
    "timestamp",
    "local_timestamp",
    "ask_amount",
    "ask_price",
    "bid_price",
    "bid_amount",
]


@register
class TardisReader(Reader):
    """Tardis.dev ``trades`` and ``quotes`` CSV (plain or gzip)."""

    name = "tardis-csv"
    source = "tardis-csv"

    @classmethod
    def sniff(cls, path: Path, head: str) -> bool:
        first = head.splitlines()[0].strip() if head else ""
        return first in (",".join(TRADES), ",".join(QUOTES))

    def read(self, path: Path, bad: BadLines, stats: Stats) -> Iterator[Chunk]:
        with open(path, "rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
        with _open(path, gz) as fh:
            first = fh.readline(65_536).decode("utf-8", "replace").strip()
        if not first:
            raise ReaderError(str(path), None, "the file is empty")
        cols = first.split(",")
        kind: EventKind
        if cols == TRADES:
            kind = "trade"
            types = {
                "exchange": pl.String,
                "symbol": pl.String,
                "timestamp": pl.Int64,
                "local_timestamp": pl.Int64,
                "id": pl.Int64,
                "side": pl.String,
                "price": pl.Float64,
                "amount": pl.Float64,
            }
        elif cols == QUOTES:
            kind = "quote"
            types = {
                "exchange": pl.String,
                "symbol": pl.String,
                "timestamp": pl.Int64,
                "local_timestamp": pl.Int64,
                "ask_amount": pl.Float64,
                "ask_price": pl.Float64,
                "bid_price": pl.Float64,
                "bid_amount": pl.Float64,
            }
        else:
            raise ReaderError(str(path), 1, f"not a Tardis trades or quotes header: {first[:120]!r}")
        frames = iter_typed(lambda: _open(path, gz), str(path), cols, types, bad, header=True)
        for frame in frames:
            stats.lines += frame.height
            frame = check_times(frame, "timestamp", US_RANGE, str(path), bad)
            if kind == "trade":
                sides = frame["side"].is_in(["buy", "sell"])
                for row in frame.filter(~sides).iter_rows(named=True):
                    bad(
                        str(path),
                        int(row["_line"]),
                        f"column side: {row['side']!r} is not buy or sell",
                        "",
                    )
                frame = frame.filter(sides)
                out = frame.select(
                    "exchange",
                    "symbol",
                    pl.col("id").alias("trade_id"),
                    "price",
                    pl.col("amount").alias("qty"),
                    "side",
                    pl.col("timestamp").alias("ts_event"),
                    pl.col("local_timestamp").alias("ts_recv"),
                )
            else:
                out = frame.select(
                    "exchange",
                    "symbol",
                    pl.col("bid_price").alias("bid_px"),
                    pl.col("bid_amount").alias("bid_qty"),
                    pl.col("ask_price").alias("ask_px"),
                    pl.col("ask_amount").alias("ask_qty"),
                    pl.col("_line").alias("update_id"),
                    pl.col("timestamp").alias("ts_event"),
                    pl.col("local_timestamp").alias("ts_recv"),
                )
            stats.events[kind] += out.height
            yield Chunk(kind, out.to_arrow().cast(SCHEMAS[kind]))


def _open(path: Path, gz: bool) -> IO[bytes]:
    return open_gzip(str(path)) if gz else open(path, "rb")
