"""MOD-002 volume-anomaly, reference version (docs/DETECTORS.md, MOD-002)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from coattail.reference.alerts import MAX_EVENT_IDS, alert_row
from coattail.reference.stream import KEY, US_PER_S, counted_trades, window_start
from core.events import event_id
from pipeline.alerts import evidence_json

if TYPE_CHECKING:
    # the settings' type only: the reference never runs detector code
    from pipeline.detectors.volume_anomaly import VolumeAnomalySettings

DETECTOR = "MOD-002"


def severity_for(z: float, z_threshold: float) -> str:
    """``low`` from the threshold, ``medium`` from 1.5x, ``high`` from 2x, ``critical`` from 3x."""
    for factor, level in ((3.0, "critical"), (2.0, "high"), (1.5, "medium")):
        if z >= factor * z_threshold:
            return level
    return "low"


def volume_alerts(
    annotated: pl.DataFrame, limits: pl.DataFrame, settings: VolumeAnomalySettings
) -> list[dict[str, Any]]:
    """Alerts for closed windows whose notional is ``z_threshold`` deviations above the baseline."""
    width = settings.window_seconds * US_PER_S
    counted = counted_trades(annotated).with_columns(
        window_start(pl.col("ts_event"), settings.window_seconds).alias("window_start")
    )
    alerts: list[dict[str, Any]] = []
    close = {(r["exchange"], r["symbol"]): r["close_limit"] for r in limits.iter_rows(named=True)}
    for (exchange, symbol), trades in counted.group_by(list(KEY), maintain_order=True):
        sums = trades.group_by("window_start").agg(
            pl.col("notional_usd").sum().alias("v"), pl.len().alias("n")
        )
        first = int(sums.get_column("window_start").min())  # type: ignore[arg-type]
        last = ((close[(exchange, symbol)] - width) // width) * width
        if last < first:
            continue
        count = (last - first) // width + 1
        v = np.zeros(count)
        n = np.zeros(count, dtype=np.int64)
        for row in sums.iter_rows(named=True):
            i = (row["window_start"] - first) // width
            if i < count:
                v[i], n[i] = row["v"], row["n"]
        for i in range(settings.min_history, count):
            history = v[max(0, i - settings.baseline_windows) : i]
            mean, std = float(history.mean()), float(history.std())
            z = (v[i] - mean) / max(std, settings.std_floor_usd)
            if z < settings.z_threshold or v[i] < settings.min_notional_usd:
                continue
            start = first + i * width
            in_window = trades.filter(pl.col("window_start") == start)
            largest = in_window.sort(["notional_usd", "arrival"], descending=[True, False]).head(
                MAX_EVENT_IDS
            )
            ids = [
                event_id("trade", str(exchange), str(symbol), t)
                for t in largest.sort("arrival").get_column("trade_id").to_list()
            ]
            evidence = {
                "notional_usd": float(v[i]),
                "mean": mean,
                "std": std,
                "history": len(history),
                "trades": int(n[i]),
            }
            alerts.append(
                alert_row(
                    detector=DETECTOR,
                    kind="volume_spike",
                    exchange=str(exchange),
                    symbol=str(symbol),
                    key=start,
                    ts_event=start + width,
                    window_start=start,
                    window_end=start + width,
                    severity=severity_for(z, settings.z_threshold),
                    value=float(z),
                    threshold=settings.z_threshold,
                    evidence=evidence_json(evidence),
                    event_ids=ids,
                )
            )
    return alerts
