"""Per-key arrival-order facts every reference detector shares: lateness, duplicates, USD notional.

All of it follows docs/DETECTORS.md, Common ground. Computed vectorised over the valid records of a run
(the arrival frame of ``coattail.reference.inputs`` minus the quarantined ones), kept in arrival order.
"""

from __future__ import annotations

from typing import Final

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
    valid = frame.filter(pl.col("reason").is_null()).sort("arrival")
    key = list(KEY)
    trade = pl.col("kind") == "trade"
    delay = watermark_seconds * US_PER_S
    prior_max_ts = pl.col("ts_event").cum_max().shift(1).over(key)
    by_kind = [*key, "kind"]
    pairs = valid.select(key).unique().rows()
    listed = [instruments.get(ex, sym) for ex, sym in pairs]
    rates = pl.DataFrame(
        {
            "exchange": [ex for ex, _ in pairs],
            "symbol": [sym for _, sym in pairs],
            "quote_currency": [i.quote if i is not None else None for i in listed],
            "usd_rate": [instruments.quote_usd.get(i.quote) if i is not None else None for i in listed],
        },
        schema={"exchange": pl.Utf8, "symbol": pl.Utf8, "quote_currency": pl.Utf8, "usd_rate": pl.Float64},
    )
    return (
        valid.join(rates, on=key, how="left")
        .sort("arrival")
        .with_columns(
            (pl.col("ts_event") < prior_max_ts - delay).fill_null(False).alias("late"),
            (trade & (pl.int_range(pl.len()).over([*by_kind, "trade_id"]) > 0)).alias("duplicate"),
            pl.when(trade)
            .then(pl.col("trade_id") - pl.col("trade_id").cum_max().shift(1).over(by_kind) - 1)
            .otherwise(None)
            .alias("id_gap"),
            pl.when(trade).then(pl.col("price").shift(1).over(by_kind)).otherwise(None).alias("prev_price"),
            (pl.col("price") * pl.col("qty") * pl.col("usd_rate")).alias("notional_usd"),
        )
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


def counted_trades(annotated: pl.DataFrame) -> pl.DataFrame:
    """The counted trades (``counted``) of the annotated records, in arrival order."""
    return annotated.filter(counted())


def closing_limits(annotated: pl.DataFrame, watermark_seconds: int) -> pl.DataFrame:
    """Per key, the time up to which windows are closed at the end of the input: max ``ts_event`` of
    the key's valid records minus the watermark delay. A window ``[s, e)`` is closed when ``e <= limit``.
    """
    return annotated.group_by(list(KEY)).agg(
        (pl.col("ts_event").max() - watermark_seconds * US_PER_S).alias("close_limit")
    )
