"""MOD-001 whale-detector, reference version (docs/DETECTORS.md, MOD-001)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from coattail.reference.alerts import alert_row
from coattail.reference.stream import KEY
from core.events import event_id
from pipeline.alerts import evidence_json

if TYPE_CHECKING:
    # the settings' type only: the reference never runs detector code
    from pipeline.detectors.whale import WhaleSettings

DETECTOR = "MOD-001"


def whale_alerts(annotated: pl.DataFrame, settings: WhaleSettings) -> list[dict[str, Any]]:
    """One alert per valid, non-duplicate trade whose USD notional reaches its symbol's threshold, with
    the trade's ``arrival`` (its decision event, for MOD-008).

    Late trades are checked too: only windowed aggregates leave them out.
    """
    trades = (
        annotated.lazy()
        .filter((pl.col("kind") == "trade") & ~pl.col("duplicate") & pl.col("notional_usd").is_not_null())
        .select(*KEY, "arrival", "ts_event", "ts_sent", "trade_id", "price", "qty", "side", "notional_usd",
                "quote_currency")
        .collect()
    )
    if trades.is_empty():
        return []
    thresholds = {
        s: settings.thresholds_usd.get(s, settings.default_threshold_usd)
        for s in trades.get_column("symbol").unique().to_list()
    }
    trades = trades.with_columns(
        pl.col("symbol").replace_strict(thresholds, return_dtype=pl.Float64).alias("threshold")
    ).filter(pl.col("notional_usd") >= pl.col("threshold"))
    levels = sorted(settings.severity_multiples.items(), key=lambda kv: kv[1])
    alerts = []
    for t in trades.iter_rows(named=True):
        notional, threshold = t["notional_usd"], t["threshold"]
        severity = [name for name, m in levels if notional >= m * threshold][-1]
        evidence = {
            "price": t["price"],
            "qty": t["qty"],
            "side": t["side"],
            "notional_usd": notional,
            "quote_currency": t["quote_currency"],
            "trade_id": t["trade_id"],
            "multiple": notional / threshold,
        }
        alerts.append(
            {**alert_row(
                detector=DETECTOR,
                kind="whale_trade",
                exchange=t["exchange"],
                symbol=t["symbol"],
                key=t["trade_id"],
                ts_event=t["ts_event"],
                severity=severity,
                value=notional,
                threshold=threshold,
                evidence=evidence_json(evidence),
                event_ids=[event_id("trade", t["exchange"], t["symbol"], t["trade_id"])],
                ts_sent=t["ts_sent"],
            ), "arrival": t["arrival"]}
        )
    return alerts
