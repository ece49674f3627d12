"""Per-key arrival-order facts every reference detector shares: lateness, duplicates, USD notional.

All of it follows docs/DETECTORS.md, Common ground. Computed vectorised over the valid records of a run
(the arrival frame of ``coattail.reference.inputs`` minus the quarantined ones), kept in arrival order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import polars as pl

from pipeline.instruments import InstrumentsConfig

KEY: Final = ("exchange", "symbol")
US_PER_S: Final = 1_000_000
_KEY_ID: Final = "_key_id"
_TRADE: Final = "_trade"
_LANE: Final = "_lane"
_ROW: Final = "_row"


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
    trade = pl.col("kind") == "trade"
    # one integer per key and kind (the lane) partitions every window below, all in one context so the
    # lanes are found once
    key_id = valid.select(key_code().alias(_KEY_ID)).to_series()
    quote, rate = _rates(valid, key_id, instruments)
    lane = lane_code(pl.col(_KEY_ID))
    highest = pl.col("trade_id").cum_max().shift(1).over(lane)
    if valid.get_column("ts_event").is_sorted():
        # times never go back, so no record arrives behind its key's watermark
        late = pl.lit(False)
    else:
        watermark = pl.col("ts_event").cum_max().shift(1).over(_KEY_ID) - watermark_seconds * US_PER_S
        late = (pl.col("ts_event") < watermark).fill_null(False)
    annotated = valid.with_columns(key_id).with_columns(
        quote.alias("quote_currency"),
        rate.alias("usd_rate"),
        late.alias("late"),
        # below every earlier id of the key it is at least out of order; only those can repeat one
        (trade & (pl.col("trade_id") <= highest)).fill_null(False).alias("duplicate"),
        pl.when(trade).then(pl.col("trade_id") - highest - 1).alias("id_gap"),
        pl.when(trade).then(pl.col("price").shift(1).over(lane)).alias("prev_price"),
    )
    return annotated.with_columns(
        _repeats(annotated, lane).alias("duplicate"),
        (pl.col("price") * pl.col("qty") * pl.col("usd_rate")).alias("notional_usd"),
    ).drop(_KEY_ID)


def key_code() -> pl.Expr:
    """One integer per ``(exchange, symbol)``: their Categorical codes, so that a window or a group
    partitions by integers instead of comparing two strings row by row."""
    exchange, symbol = (pl.col(c).cast(pl.Categorical).to_physical().cast(pl.UInt64) for c in KEY)
    return exchange * 2**32 + symbol


def lane_code(key: pl.Expr | None = None) -> pl.Expr:
    """One integer per key (``key``, else ``key_code()``) and kind, trades apart from the rest: the
    partition of every per-key-and-kind window of valid market records (trades and quotes)."""
    return (key_code() if key is None else key) * 2 + (pl.col("kind") == "trade")


def _rates(
    valid: pl.DataFrame, key_id: pl.Series, instruments: InstrumentsConfig
) -> tuple[pl.Series, pl.Series]:
    """Each record's quote currency and its USD rate (null when unlisted or without a rate)."""
    firsts = key_id.arg_unique()
    names = valid.select(KEY)[firsts].rows()
    listed = {k: instruments.get(ex, sym) for k, (ex, sym) in zip(key_id[firsts], names, strict=True)}
    quote = {k: i.quote if i is not None else None for k, i in listed.items()}
    rate = {k: instruments.quote_usd.get(q) if q is not None else None for k, q in quote.items()}
    return (
        key_id.replace_strict(quote, return_dtype=pl.Utf8),
        key_id.replace_strict(rate, return_dtype=pl.Float64),
    )


def _repeats(annotated: pl.DataFrame, lane: pl.Expr) -> pl.Series:
    """Per record, whether it is a trade whose ``(key, trade id)`` came before.

    ``duplicate`` holds the trades not above every earlier id of their key: only those can repeat an
    id, and they are few, so only the trades sharing one of their ids are checked exactly.
    """
    maybe = annotated.filter("duplicate").get_column("trade_id")
    if maybe.is_empty():
        return annotated.get_column("duplicate")
    trade = pl.col("kind") == "trade"
    shared = (
        annotated.lazy()
        .select(pl.int_range(pl.len()).alias(_ROW), lane.alias(_LANE), "trade_id", trade.alias(_TRADE))
        .filter(pl.col(_TRADE) & pl.col("trade_id").is_in(maybe.implode()))
        .collect()
    )
    rows = shared.filter(~pl.struct(_LANE, "trade_id").is_first_distinct()).get_column(_ROW)
    repeated = np.zeros(annotated.height, dtype=bool)
    repeated[rows.to_numpy()] = True
    return pl.Series(repeated)


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
