"""MOD-006 order-flow-imbalance, reference version (docs/DETECTORS.md, MOD-006)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from coattail.reference.alerts import MAX_EVENT_IDS, alert_row
from coattail.reference.stream import KEY, US_PER_S, counted_trades, window_start
from coattail.run.outputs import FLOW_COLUMNS
from core.events import event_id
from pipeline.alerts import evidence_json

if TYPE_CHECKING:
    # the settings' type only: the reference never runs detector code
    from pipeline.detectors.flow_imbalance import FlowImbalanceSettings

DETECTOR = "MOD-006"


def flow_metrics(
    annotated: pl.DataFrame, limits: pl.DataFrame, settings: FlowImbalanceSettings
) -> pl.DataFrame:
    """One row per key and closed window holding counted trades: B, S, T, imbalance, trades."""
    width = settings.window_seconds * US_PER_S
    buy = pl.col("side") == "buy"
    return (
        counted_trades(annotated)
        .with_columns(window_start(pl.col("ts_event"), settings.window_seconds).alias("window_start"))
        .join(limits, on=list(KEY))
        .filter(pl.col("window_start") + width <= pl.col("close_limit"))
        .group_by([*KEY, "window_start"])
        .agg(
            pl.col("notional_usd").filter(buy).sum().alias("buy_notional_usd"),
            pl.col("notional_usd").filter(~buy).sum().alias("sell_notional_usd"),
            pl.len().cast(pl.Int64).alias("trades"),
        )
        .with_columns((pl.col("buy_notional_usd") + pl.col("sell_notional_usd")).alias("notional_usd"))
        .with_columns(
            ((pl.col("buy_notional_usd") - pl.col("sell_notional_usd")) / pl.col("notional_usd")).alias(
                "imbalance"
            ),
            (pl.col("window_start") + width).alias("window_end"),
        )
        .select(list(FLOW_COLUMNS))
        .sort([*KEY, "window_start"])
    )


def flow_alerts(
    annotated: pl.DataFrame, metrics: pl.DataFrame, settings: FlowImbalanceSettings
) -> list[dict[str, Any]]:
    """A ``flow_imbalance`` alert per metrics row with enough notional and a one-sided enough flow."""
    width = settings.window_seconds * US_PER_S
    firing = metrics.filter(
        (pl.col("notional_usd") >= settings.min_notional_usd)
        & (pl.col("imbalance").abs() >= settings.threshold)
    )
    trades = counted_trades(annotated).with_columns(
        window_start(pl.col("ts_event"), settings.window_seconds).alias("window_start")
    )
    alerts = []
    for m in firing.iter_rows(named=True):
        direction = "buy" if m["imbalance"] > 0 else "sell"
        dominant = trades.filter(
            (pl.col("exchange") == m["exchange"])
            & (pl.col("symbol") == m["symbol"])
            & (pl.col("window_start") == m["window_start"])
            & (pl.col("side") == direction)
        )
        largest = dominant.sort(["notional_usd", "arrival"], descending=[True, False]).head(MAX_EVENT_IDS)
        ids = [
            event_id("trade", m["exchange"], m["symbol"], t)
            for t in largest.sort("arrival").get_column("trade_id").to_list()
        ]
        size = abs(m["imbalance"])
        severity = (
            "critical" if size >= 1.0 else "high" if size >= 0.9 else "medium" if size >= 0.8 else "low"
        )
        evidence = {
            "buy_notional_usd": m["buy_notional_usd"],
            "sell_notional_usd": m["sell_notional_usd"],
            "notional_usd": m["notional_usd"],
            "trades": m["trades"],
            "direction": direction,
        }
        alerts.append(
            alert_row(
                detector=DETECTOR,
                kind="flow_imbalance",
                exchange=m["exchange"],
                symbol=m["symbol"],
                key=m["window_start"],
                ts_event=m["window_start"] + width,
                window_start=m["window_start"],
                window_end=m["window_start"] + width,
                severity=severity,
                value=m["imbalance"],
                threshold=settings.threshold,
                evidence=evidence_json(evidence),
                event_ids=ids,
            )
        )
    return alerts
