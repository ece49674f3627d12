"""Per-key arrival-order facts every reference detector shares: lateness, duplicates, USD notional.

All of it follows docs/DETECTORS.md, Common ground. Computed vectorised over the valid records of a run
(the arrival frame of ``coattail.reference.inputs`` minus the quarantined ones), kept in arrival order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import polars as pl

from core.events import TAPE_KINDS
from pipeline.instruments import InstrumentsConfig

KEY: Final = ("exchange", "symbol")
US_PER_S: Final = 1_000_000
_KEY_ID: Final = "_key_id"
_LANE: Final = "_lane"


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
    delay = watermark_seconds * US_PER_S
    pairs = valid.group_by(KEY).len().select(KEY).rows()
    listed = [instruments.get(ex, sym) for ex, sym in pairs]
    rates = pl.DataFrame(
        {
            "exchange": [ex for ex, _ in pairs],
            "symbol": [sym for _, sym in pairs],
            "quote_currency": [i.quote if i is not None else None for i in listed],
            "usd_rate": [instruments.quote_usd.get(i.quote) if i is not None else None for i in listed],
            _KEY_ID: list(range(len(pairs))),
        },
        schema={
            "exchange": pl.Utf8,
            "symbol": pl.Utf8,
            "quote_currency": pl.Utf8,
            "usd_rate": pl.Float64,
            _KEY_ID: pl.Int64,
        },
    )
    # Windows over one integer per key (and per key and kind) instead of the two name columns: the
    # same partitions, grouped several times faster.
    kind_code = pl.lit(None, dtype=pl.Int64)
    for i, kind in enumerate(TAPE_KINDS):  # a few string comparisons beat a string-to-code lookup
        kind_code = pl.when(pl.col("kind") == kind).then(pl.lit(i, dtype=pl.Int64)).otherwise(kind_code)
    lane = pl.col(_KEY_ID) * len(TAPE_KINDS) + kind_code
    prior_max_ts = pl.col("ts_event").cum_max().shift(1).over(_KEY_ID)
    return (
        valid.join(rates, on=list(KEY), how="left", maintain_order="left")
        .with_columns(lane.alias(_LANE))
        .with_columns(
            (pl.col("ts_event") < prior_max_ts - delay).fill_null(False).alias("late"),
            # a trade repeats an earlier one when its (key, trade id) is not the first of its kind
            (trade & ~pl.col("trade_id").is_first_distinct().over(_LANE)).alias("duplicate"),
            pl.when(trade)
            .then(pl.col("trade_id") - pl.col("trade_id").cum_max().shift(1).over(_LANE) - 1)
            .otherwise(None)
            .alias("id_gap"),
            pl.when(trade).then(pl.col("price").shift(1).over(_LANE)).otherwise(None).alias("prev_price"),
            (pl.col("price") * pl.col("qty") * pl.col("usd_rate")).alias("notional_usd"),
        )
        .drop(_KEY_ID, _LANE)
    )


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
