"""A small, deliberately naive reading of docs/DETECTORS.md (MOD-001..003) used to check that the
generator's labels and the alerts a tape provokes match. No watermark or arrival-order subtleties: the
generator's rows are in order and its transport faults are not applied here."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from core.tape import Tape
from pipeline.config import Config
from pipeline.detectors.spread import SpreadSettings
from pipeline.detectors.volume_anomaly import VolumeAnomalySettings
from pipeline.detectors.whale import WhaleSettings

W = 60_000_000


@dataclass(frozen=True)
class Alert:
    detector: str
    exchange: str
    symbol: str
    ts: int
    window_start: int | None = None


def _valid_trades(tape: Tape) -> pl.DataFrame:
    df = pl.from_arrow(tape.read("trade"))
    assert isinstance(df, pl.DataFrame)
    df = df.filter((pl.col("price") > 0) & (pl.col("qty") > 0) & pl.col("side").is_in(["buy", "sell"]))
    return df.unique(subset=["exchange", "symbol", "trade_id"], keep="first", maintain_order=True)


def whales(tape: Tape, config: Config) -> list[Alert]:
    df = _valid_trades(tape)
    th = config.settings_of(WhaleSettings).thresholds_usd
    out = []
    for (ex, sym), g in df.group_by(["exchange", "symbol"]):
        t = th.get(str(sym), config.settings_of(WhaleSettings).default_threshold_usd)
        hit = g.filter(pl.col("price") * pl.col("qty") >= t)
        out += [Alert("MOD-001", str(ex), str(sym), int(ts)) for ts in hit["ts_event"]]
    return out


def volume_spikes(tape: Tape, config: Config) -> list[Alert]:
    s = config.settings_of(VolumeAnomalySettings)
    wm = config.spark.watermark_seconds * 1_000_000
    df = _valid_trades(tape)
    out = []
    for (ex, sym), g in df.group_by(["exchange", "symbol"]):
        ts = g["ts_event"].to_numpy()
        notional = (g["price"] * g["qty"]).to_numpy()
        first = ts.min() // W
        last_closed = (ts.max() - wm) // W  # windows with end <= max - wm
        n = int(last_closed - first)
        if n <= 0:
            continue
        v = np.bincount(ts // W - first, weights=notional, minlength=n + 1)[:n]
        for i in range(s.min_history, n):
            hist = v[max(0, i - s.baseline_windows) : i]
            z = (v[i] - hist.mean()) / max(hist.std(), s.std_floor_usd)
            if z >= s.z_threshold and v[i] >= s.min_notional_usd:
                ws = int((first + i) * W)
                out.append(Alert("MOD-002", str(ex), str(sym), ws + W, ws))
    return out


def spread_alerts(tape: Tape, config: Config) -> list[Alert]:
    s = config.settings_of(SpreadSettings)
    wm = config.spark.watermark_seconds * 1_000_000
    df = pl.from_arrow(tape.read("quote"))
    assert isinstance(df, pl.DataFrame)
    out = []
    for (ex, sym), g in df.group_by(["exchange", "symbol"]):
        closed_end = g["ts_event"].max() - wm  # type: ignore[operator]
        g = g.with_columns((pl.col("ts_event") // W * W).alias("ws")).filter(pl.col("ws") + W <= closed_end)
        ok = g.filter(pl.col("bid_px") < pl.col("ask_px")).with_columns(
            ((pl.col("ask_px") - pl.col("bid_px")) / ((pl.col("ask_px") + pl.col("bid_px")) / 2) * 1e4).alias(
                "bps"
            )
        )
        per = ok.group_by("ws").agg(pl.col("bps").mean().alias("mean")).sort("ws")
        means = per["mean"].to_numpy()
        starts = per["ws"].to_numpy()
        for i in range(len(means)):
            hist = means[max(0, i - s.baseline_windows) : i]
            fire = means[i] > s.max_spread_bps or (
                len(hist) >= s.min_history and means[i] > s.median_multiple * np.median(hist)
            )
            if fire:
                out.append(Alert("MOD-003", str(ex), str(sym), int(starts[i]) + W, int(starts[i])))
        crossed = g.filter(pl.col("bid_px") > pl.col("ask_px"))["ws"].unique()
        out += [Alert("MOD-003", str(ex), str(sym), int(w) + W, int(w)) for w in crossed]
    return out


def all_alerts(tape: Tape, config: Config) -> list[Alert]:
    return whales(tape, config) + volume_spikes(tape, config) + spread_alerts(tape, config)


def match(tape: Tape, config: Config) -> tuple[list[str], list[Alert]]:
    """(labels with no alert, alerts explained by no label) for the alert-expecting labels."""
    alerts = all_alerts(tape, config)
    labels = [lb for lb in tape.manifest.labels if lb.expect == "alert"]
    missed = []
    for lb in labels:
        if not any(
            a.detector == lb.detector
            and a.exchange == lb.exchange
            and a.symbol == lb.symbol
            and lb.start_us <= a.ts <= lb.end_us
            for a in alerts
        ):
            missed.append(f"{lb.kind} {lb.detector} {lb.exchange}:{lb.symbol} {lb.start_us}")
    spurious = []
    for a in alerts:
        ok = False
        for lb in tape.manifest.labels:
            if lb.exchange != a.exchange or lb.symbol != a.symbol:
                continue
            lo, hi = lb.start_us, lb.end_us
            if a.detector == lb.detector and lo <= a.ts <= hi:
                ok = True
            if a.detector in lb.tolerates and a.window_start is not None and a.window_start <= lo < a.ts:
                ok = True
        if not ok:
            spurious.append(a)
    return missed, spurious
