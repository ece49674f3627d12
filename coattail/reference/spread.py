"""MOD-003 spread-calculator, reference version (docs/DETECTORS.md, MOD-003)."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

import polars as pl

from coattail.reference.alerts import alert_row
from coattail.reference.stream import KEY, US_PER_S, window_start
from coattail.run.outputs import SPREAD_COLUMNS
from core.events import event_id
from pipeline.alerts import evidence_json

if TYPE_CHECKING:
    # the settings' type only: the reference never runs detector code
    from pipeline.detectors.spread import SpreadSettings

DETECTOR = "MOD-003"


def spread_metrics(closed: pl.DataFrame, settings: SpreadSettings) -> pl.DataFrame:
    """One row per key and closed window with at least one spread (non-late quotes with bid < ask);
    ``closed``: the ``closed_quotes``."""
    width = settings.window_seconds * US_PER_S
    quotes = closed.filter(pl.col("bid_px") < pl.col("ask_px"))
    mid = (pl.col("ask_px") + pl.col("bid_px")) / 2
    bps = ((pl.col("ask_px") - pl.col("bid_px")) / mid * 1e4).alias("spread_bps")
    return (
        quotes.with_columns(bps)
        .sort("arrival")
        .group_by([*KEY, "window_start"])
        .agg(
            pl.col("spread_bps").min().alias("min_bps"),
            pl.col("spread_bps").mean().alias("mean_bps"),
            pl.col("spread_bps").max().alias("max_bps"),
            pl.col("spread_bps").last().alias("last_bps"),
            pl.len().cast(pl.Int64).alias("count"),
        )
        .with_columns((pl.col("window_start") + width).alias("window_end"))
        .select(list(SPREAD_COLUMNS))
        .sort([*KEY, "window_start"])
    )


def spread_alerts(
    closed: pl.DataFrame, metrics: pl.DataFrame, settings: SpreadSettings
) -> list[dict[str, Any]]:
    """``spread_blowout`` alerts from the metrics, ``crossed_book`` alerts from the crossed quotes among
    the ``closed_quotes``."""
    alerts = _blowouts(metrics, settings)
    crossed = closed.filter(pl.col("bid_px") > pl.col("ask_px")).sort("arrival")
    width = settings.window_seconds * US_PER_S
    for (exchange, symbol, start), group in crossed.group_by([*KEY, "window_start"], maintain_order=True):
        ids = [
            event_id("quote", str(exchange), str(symbol), u) for u in group.get_column("update_id").to_list()
        ]
        alerts.append(
            alert_row(
                detector=DETECTOR,
                kind="crossed_book",
                exchange=str(exchange),
                symbol=str(symbol),
                key=f"crossed:{start}",
                ts_event=int(start) + width,
                window_start=int(start),
                window_end=int(start) + width,
                severity="high",
                value=float(group.height),
                threshold=0.0,
                evidence=evidence_json({"crossed": group.height}),
                event_ids=ids,
            )
        )
    return alerts


def closed_quotes(annotated: pl.DataFrame, limits: pl.DataFrame, settings: SpreadSettings) -> pl.DataFrame:
    """The non-late quotes of closed windows, with their ``window_start``: what MOD-003's metrics and
    alerts both read (selected once, a day holds millions of quotes)."""
    width = settings.window_seconds * US_PER_S
    return (
        annotated.lazy()
        .filter((pl.col("kind") == "quote") & ~pl.col("late"))
        .select(*KEY, "arrival", "ts_event", "update_id", "bid_px", "ask_px")
        .with_columns(window_start(pl.col("ts_event"), settings.window_seconds).alias("window_start"))
        .join(limits.lazy(), on=list(KEY))
        .filter(pl.col("window_start") + width <= pl.col("close_limit"))
        .collect()
    )


def _blowouts(metrics: pl.DataFrame, settings: SpreadSettings) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = []
    for (exchange, symbol), rows in metrics.group_by(list(KEY), maintain_order=True):
        means: list[float] = []
        for row in rows.sort("window_start").iter_rows(named=True):
            mean = row["mean_bps"]
            history = means[-settings.baseline_windows :]
            bounds = []
            if mean > settings.max_spread_bps:
                bounds.append(settings.max_spread_bps)
            median = statistics.median(history) if history else None
            if median is not None and len(history) >= settings.min_history:
                relative = settings.median_multiple * median
                if mean > relative:
                    bounds.append(relative)
            means.append(mean)
            if not bounds:
                continue
            threshold = min(bounds)
            evidence = {
                "mean": mean,
                "median": median,
                "history": len(history),
                "count": row["count"],
                "max_spread_bps": settings.max_spread_bps,
            }
            alerts.append(
                alert_row(
                    detector=DETECTOR,
                    kind="spread_blowout",
                    exchange=str(exchange),
                    symbol=str(symbol),
                    key=f"spread:{row['window_start']}",
                    ts_event=row["window_end"],
                    window_start=row["window_start"],
                    window_end=row["window_end"],
                    severity="high" if mean > 2 * threshold else "medium",
                    value=mean,
                    threshold=threshold,
                    evidence=evidence_json(evidence),
                    event_ids=[],
                )
            )
    return alerts
