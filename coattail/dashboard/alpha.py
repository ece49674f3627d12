"""The dashboard's alpha scorecard: each MOD-011 source's newest score at the signal horizon, from the
run's ``alpha_scores`` table (the score MOD-011 signals on)."""

from __future__ import annotations

from typing import Any

import polars as pl

from coattail.backtest.walkforward import SOURCE, latest_scores, qualifies
from pipeline.detectors.alpha_scoring import AlphaSettings


def scorecard(scores: pl.DataFrame, settings: AlphaSettings) -> dict[str, Any]:
    """``{"horizon_s", "bounds", "sources"}``: per source (``asset, detector, exchange, symbol``) its newest
    score at ``signal_horizon_s`` (``count, mean_bps, hit_rate, t_stat``), when it matured (``ts_event``,
    µs exchange time) and whether it passes the signal bounds (``follows``); best t-statistic first."""
    latest = latest_scores(scores.filter(pl.col("horizon_s") == settings.signal_horizon_s))
    sources = latest.select(
        "asset",
        *SOURCE,
        "count",
        "mean_bps",
        "hit_rate",
        "t_stat",
        "ts_event",
        qualifies(settings).alias("follows"),
    ).sort(["t_stat", *SOURCE], descending=[True, False, False, False], nulls_last=True)
    bounds = {
        "min_samples": settings.min_samples,
        "min_edge_bps": settings.min_edge_bps,
        "min_hit_rate": settings.min_hit_rate,
    }
    return {"horizon_s": settings.signal_horizon_s, "bounds": bounds, "sources": sources.to_dicts()}
