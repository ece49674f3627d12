"""Per-key arrival-order facts every reference detector shares: lateness, duplicates, USD notional.

All of it follows docs/DETECTORS.md, Common ground. Computed vectorised over the valid records of a run
(the arrival frame of ``coattail.reference.inputs`` minus the quarantined ones), kept in arrival order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Final

import numpy as np
import polars as pl

from pipeline.instruments import InstrumentsConfig

KEY: Final = ("exchange", "symbol")
US_PER_S: Final = 1_000_000


def window_start(ts: pl.Expr, window_seconds: int) -> pl.Expr:
    """``floor(ts / W) * W``: windows aligned to the epoch."""
    width = window_seconds * US_PER_S
    return (ts // width) * width


def annotate(frame: pl.DataFrame, *, watermark_seconds: int, instruments: InstrumentsConfig) -> pl.DataFrame:
    """The valid records in arrival order with ``late``, ``duplicate``, ``id_gap``, ``prev_price``,
    ``quote_currency`` and ``notional_usd`` (null when the quote currency has no USD rate).

    ``late``: older than the key's watermark at arrival, the watermark being the maximum ``ts_event`` of
    the key's earlier-arrived valid records (both kinds) minus ``watermark_seconds``.
    """
    # a clean tape has nothing to drop: no copy of a wide frame then
    clean = frame.get_column("reason").null_count() == frame.height
    valid = (frame if clean else frame.filter(pl.col("reason").is_null())).sort("arrival")
    keys = KeyLanes(valid)
    listed = [instruments.get(ex, sym) for ex, sym in keys.names]
    quote = pl.Series([i.quote if i is not None else None for i in listed], dtype=pl.Utf8)
    rate = pl.Series(
        [instruments.quote_usd.get(i.quote) if i is not None else None for i in listed], dtype=pl.Float64
    )
    ts = valid.get_column("ts_event").to_numpy()
    watermark, first, _ = keys.prior(ts, np.maximum.accumulate)
    facts = pl.DataFrame(
        {
            "quote_currency": keys.spread(quote),
            "usd_rate": keys.spread(rate),
            # a key's first record is never late: nothing arrived before it
            "late": ~first & (ts < watermark - watermark_seconds * US_PER_S),
            **_trade_facts(valid, keys),
        }
    )
    return valid.hstack(facts).with_columns(
        (pl.col("price") * pl.col("qty") * pl.col("usd_rate")).alias("notional_usd")
    )


class KeyLanes:
    """The rows of a frame grouped by ``(exchange, symbol)`` as contiguous lanes, each in the rows' order.

    Every per-key running fact of the annotation (the watermark, the highest trade id, the previous
    price) is then one NumPy pass per lane over a contiguous slice, instead of a Polars window that
    groups the rows again for each fact.
    """

    def __init__(self, frame: pl.DataFrame) -> None:
        # Categorical codes number the names without comparing strings row by row
        codes = frame.select(pl.col(c).cast(pl.Categorical).to_physical() for c in KEY)
        exchange, _ = _dense(codes.get_column("exchange").to_numpy())
        symbol, n_symbols = _dense(codes.get_column("symbol").to_numpy())
        self.key, self.count = _dense(exchange * max(n_symbols, 1) + symbol)
        self.order, self.starts = _lanes(self.key, self.count)
        firsts = self.order[self.starts[:-1]]
        self.names: list[tuple[str, str]] = frame.select(KEY)[firsts].rows()

    def spread(self, per_key: pl.Series) -> pl.Series:
        """One value per key (in ``names`` order) as one value per row."""
        return per_key.gather(pl.Series(self.key, dtype=pl.UInt32)) if len(self.key) else per_key.clear()

    def prior(
        self, values: np.ndarray, running: Callable[[np.ndarray], np.ndarray], rows: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row, ``running`` (a cumulative NumPy function, or the identity) over the earlier rows of its
        lane (0 on a lane's first row), whether the row is its lane's first, and each row's key (``rows``:
        a subset of the rows, as sorted indices, makes lanes of that subset alone)."""
        key = self.key if rows is None else self.key[rows]
        order, starts = (self.order, self.starts) if rows is None else _lanes(key, self.count)
        ordered = values[order]
        before = np.zeros_like(ordered)
        first = np.zeros(len(ordered), dtype=bool)
        for a, b in itertools.pairwise(starts):
            if a == b:
                continue
            before[a + 1 : b] = running(ordered[a : b - 1])
            first[a] = True
        out = np.empty_like(before)
        out[order] = before
        is_first = np.empty_like(first)
        is_first[order] = first
        return out, is_first, key


def _dense(codes: np.ndarray) -> tuple[np.ndarray, int]:
    """Small non-negative integer codes renumbered 0..n-1 (n distinct), keeping their order."""
    if len(codes) == 0:
        return codes.astype(np.int64), 0
    present = np.flatnonzero(np.bincount(codes))
    renumber = np.zeros(int(codes.max()) + 1, dtype=np.int64)
    renumber[present] = np.arange(len(present))
    return renumber[codes], len(present)


def _lanes(key: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """A stable order that makes each key's rows contiguous, and the lanes' bounds in it."""
    # a narrow key type takes NumPy's radix sort: linear in the rows
    narrow = key.astype(np.uint16) if count <= np.iinfo(np.uint16).max else key
    order = np.argsort(narrow, kind="stable")
    starts = np.concatenate(([0], np.cumsum(np.bincount(key, minlength=count))))
    return order, starts


def _trade_facts(valid: pl.DataFrame, keys: KeyLanes) -> dict[str, pl.Series]:
    """``duplicate``, ``id_gap`` and ``prev_price`` of each trade among its key's trades (false or null on
    other kinds)."""
    n = valid.height
    is_trade = valid.get_column("kind") == "trade"
    rows = np.flatnonzero(is_trade.to_numpy())
    # gathered by Polars before NumPy sees them: a valid trade's id and price are never null
    ids = valid.get_column("trade_id").filter(is_trade).to_numpy()
    highest, first, key = keys.prior(ids, np.maximum.accumulate, rows)
    previous, _, _ = keys.prior(valid.get_column("price").filter(is_trade).to_numpy(), lambda v: v, rows)
    duplicate = np.zeros(n, dtype=bool)
    duplicate[rows[_repeats(key, ids, ~first & (ids <= highest))]] = True
    # null where there is no earlier trade of the key, and on every other kind
    none = np.ones(n, dtype=bool)
    none[rows] = first
    return {
        "duplicate": pl.Series(duplicate),
        "id_gap": _scattered(rows, ids - highest - 1, none),
        "prev_price": _scattered(rows, previous, none),
    }


def _repeats(key: np.ndarray, ids: np.ndarray, maybe: np.ndarray) -> np.ndarray:
    """Indices of the trades whose ``(key, id)`` came before; ``maybe``: the trades not above every
    earlier id of their key.

    A trade above every earlier id of its key is new; only the others can repeat one, and they are
    few, so only the trades sharing one of their ids are checked exactly.
    """
    if not maybe.any():
        return np.empty(0, dtype=np.int64)
    shared = np.flatnonzero(np.isin(ids, ids[maybe]))
    seen = pl.DataFrame({"key": key[shared], "id": ids[shared]}).select(
        pl.struct("key", "id").is_first_distinct()
    )
    repeated: np.ndarray = shared[~seen.to_series().to_numpy()]
    return repeated


def _scattered(rows: np.ndarray, values: np.ndarray, null: np.ndarray) -> pl.Series:
    """``values`` placed at ``rows`` of a column of ``len(null)`` rows, null where ``null``."""
    column = np.zeros(len(null), dtype=values.dtype)
    column[rows] = values
    return pl.Series(column).set(pl.Series(null), None)


def counted() -> pl.Expr:
    """True for the trades every windowed trade module counts (MOD-002's rule): valid, not late, not a
    duplicate, with a USD notional."""
    return (
        (pl.col("kind") == "trade")
        & ~pl.col("late")
        & ~pl.col("duplicate")
        & pl.col("notional_usd").is_not_null()
    )


TRADE_FIELDS: Final = (*KEY, "arrival", "ts_event", "trade_id", "side", "notional_usd")
"""The columns of a counted trade that the windowed trade modules read."""


def counted_trades(annotated: pl.DataFrame, columns: Sequence[str] = TRADE_FIELDS) -> pl.DataFrame:
    """The counted trades (``counted``) of the annotated records, in arrival order, with ``columns``.

    Only those columns are filtered: the annotated frame is wide and a day holds millions of rows.
    """
    return annotated.lazy().filter(counted()).select(columns).collect()


def closing_limits(annotated: pl.DataFrame, watermark_seconds: int) -> pl.DataFrame:
    """Per key, the time up to which windows are closed at the end of the input: max ``ts_event`` of
    the key's valid records minus the watermark delay. A window ``[s, e)`` is closed when ``e <= limit``.
    """
    return annotated.group_by(list(KEY)).agg(
        (pl.col("ts_event").max() - watermark_seconds * US_PER_S).alias("close_limit")
    )
