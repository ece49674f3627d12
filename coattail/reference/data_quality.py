"""MOD-004 data-quality, reference version (docs/DETECTORS.md, MOD-004): DQ and quarantine counts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from coattail.reference.stream import KEY, US_PER_S, lane_code, window_start
from coattail.run.outputs import DQ_COLUMNS

if TYPE_CHECKING:
    # the settings' type only: the reference never runs detector code
    from pipeline.detectors.data_quality import DataQualitySettings


def dq_counts(annotated: pl.DataFrame, settings: DataQualitySettings) -> pl.DataFrame:
    """Stream-rule counts per key, window of the event's ``ts_event`` and reason.

    Every rule applies to every valid event, late ones included, except ``STALE_FEED``, which looks
    at non-late events only (docs/DETECTORS.md, "Precise stream-rule details").
    """
    trade = pl.col("kind") == "trade"
    quote = pl.col("kind") == "quote"
    # only the columns the rules read: every filter below then copies a few narrow columns
    annotated = annotated.select(
        *KEY, "kind", "arrival", "ts_event", "late", "duplicate", "id_gap", "price", "prev_price",
        "bid_px", "ask_px",
    )  # fmt: skip
    # no copy of millions of rows when nothing is late (a tape replayed without faults)
    on_time = annotated.filter(~pl.col("late")) if annotated.get_column("late").any() else annotated
    stale_gap = settings.stale_feed_seconds * US_PER_S
    gap_to_previous = pl.col("ts_event") - pl.col("ts_event").shift(1).over(lane_code())
    band = (pl.col("price") - pl.col("prev_price")).abs() / pl.col("prev_price") * 100
    occurrences = {
        "LATE_EVENT": annotated.filter(pl.col("late")).with_columns(pl.lit(1).alias("n")),
        "DUPLICATE_ID": annotated.filter(pl.col("duplicate")).with_columns(pl.lit(1).alias("n")),
        "TRADE_ID_GAP": annotated.filter(trade & (pl.col("id_gap") > 0)).with_columns(
            pl.col("id_gap").alias("n")
        ),
        "PRICE_BAND": annotated.filter(trade & (band > settings.price_band_pct)).with_columns(
            pl.lit(1).alias("n")
        ),
        "STALE_FEED": on_time.sort("arrival")
        .filter((gap_to_previous >= stale_gap).fill_null(False))
        .with_columns(pl.lit(1).alias("n")),
        "CROSSED_BOOK": annotated.filter(quote & (pl.col("bid_px") > pl.col("ask_px"))).with_columns(
            pl.lit(1).alias("n")
        ),
        "LOCKED_BOOK": annotated.filter(quote & (pl.col("bid_px") == pl.col("ask_px"))).with_columns(
            pl.lit(1).alias("n")
        ),
    }
    parts = [
        rows.select(
            *KEY,
            window_start(pl.col("ts_event"), settings.window_seconds).alias("window_start"),
            pl.lit(reason).alias("reason"),
            pl.col("n").cast(pl.Int64),
        )
        for reason, rows in occurrences.items()
    ]
    return (
        pl.concat(parts)
        .group_by([*KEY, "window_start", "reason"])
        .agg(pl.col("n").sum().alias("count"))
        .select(list(DQ_COLUMNS))
        .sort([*KEY, "window_start", "reason"])
    )


def quarantine_counts(frame: pl.DataFrame, settings: DataQualitySettings) -> pl.DataFrame:
    """Quarantined records per exchange, symbol (empty when unknown), window of ``ts_event`` (null when
    the payload has no integer ``ts_event``) and reason."""
    return (
        frame.filter(pl.col("reason").is_not_null())
        .with_columns(
            pl.col("exchange").fill_null(""),
            pl.col("symbol").fill_null(""),
            window_start(pl.col("ts_event"), settings.window_seconds).alias("window_start"),
        )
        .group_by([*KEY, "window_start", "reason"])
        .agg(pl.len().cast(pl.Int64).alias("count"))
        .select(list(DQ_COLUMNS))
        # every group column: rows in one order from run to run, so two reference runs compare equal
        .sort([*KEY, "window_start", "reason"])
    )
