"""Walk-forward: each day is traded with the sources the days before it scored, nothing fitted on the day.

For each day ``D`` of ``--days D1..Dn`` (UTC), the sources followed on ``D`` are those whose latest
``alpha_scores`` row at ``signal_horizon_s`` that matured before ``D`` began passes MOD-011's bounds
(``min_samples``, ``min_edge_bps``, ``min_hit_rate``, ``false_positive_rate``); every observation those
sources make on ``D`` (its decision time on ``D``) is traded in its direction for ``signal_horizon_s``.
The input's days before ``D1`` only train.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Final

import polars as pl

from core.errors import CoattailError
from pipeline.detectors.alpha_scoring import AlphaSettings, significant

DAY_US: Final = 86_400_000_000
SOURCE: Final = ["detector", "exchange", "symbol"]


def parse_days(text: str) -> list[date]:
    """``2026-01-02..2026-01-05`` (inclusive) or one ``2026-01-02`` as the list of days."""
    first, sep, last = text.partition("..")
    try:
        lo = date.fromisoformat(first.strip())
        hi = date.fromisoformat(last.strip()) if sep else lo
    except ValueError as e:
        raise CoattailError(f"--days {text!r}: give YYYY-MM-DD..YYYY-MM-DD (UTC days, inclusive)") from e
    if hi < lo:
        raise CoattailError(f"--days {text!r}: the last day is before the first")
    return [lo + timedelta(days=i) for i in range((hi - lo).days + 1)]


def day_start_us(day: date) -> int:
    """Midnight UTC of ``day`` in µs since the epoch."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1_000_000


def latest_scores(scores: pl.DataFrame) -> pl.DataFrame:
    """Each source's newest ``alpha_scores`` row (by ``ts_event``, ties by ``alert_id``)."""
    return scores.sort("ts_event", "alert_id").group_by(SOURCE).last()


def qualifies(settings: AlphaSettings) -> pl.Expr:
    """Whether a score row passes MOD-011's signal bounds (all inclusive), its significance test too when
    ``false_positive_rate`` is set."""
    bounds = (
        (pl.col("count") >= settings.min_samples)
        & (pl.col("mean_bps") >= settings.min_edge_bps)
        & (pl.col("hit_rate") >= settings.min_hit_rate)
    )
    rate = settings.false_positive_rate
    if rate is None:
        return bounds
    test = pl.struct("t_stat", "count").map_elements(
        lambda row: significant(row, rate), return_dtype=pl.Boolean
    )
    return bounds & test


def walk_forward_signals(scores: pl.DataFrame, days: list[date], settings: AlphaSettings) -> pl.DataFrame:
    """The entries of each day (``alert_id, asset, ts_event, direction, horizon_s, day``): the day's
    observations of the sources the earlier days qualified."""
    at = scores.filter(pl.col("horizon_s") == settings.signal_horizon_s)
    parts = []
    for day in days:
        start = day_start_us(day)
        latest = latest_scores(at.filter(pl.col("ts_event") < start))
        chosen = latest.filter(qualifies(settings)).select(SOURCE)
        today = at.filter(pl.col("decision_ts").is_between(start, start + DAY_US, closed="left"))
        parts.append(today.join(chosen, on=SOURCE, how="semi").select(
            pl.col("alert_id"), pl.col("asset"), pl.col("decision_ts").alias("ts_event"), pl.col("direction"),
            pl.col("horizon_s"), pl.lit(day.isoformat()).alias("day"),
        ))
    schema = {"alert_id": pl.Utf8, "asset": pl.Utf8, "ts_event": pl.Int64, "direction": pl.Int64,
              "horizon_s": pl.Int64, "day": pl.Utf8}
    return pl.concat(parts) if parts else pl.DataFrame(schema=schema)
