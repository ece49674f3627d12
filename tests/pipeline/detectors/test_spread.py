"""MOD-003 spread-calculator: hand-computed metrics and alerts, and real Binance-futures quotes."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from pipeline.alerts import alert_id
from pipeline.config import Config
from pipeline.detectors.spread import SpreadSettings
from pipeline.detectors.windowed_testkit import MIN, SEC, alerts_of, quote, run, trade
from pipeline.testkit import Item
from tests.conftest import REAL_TAPES


def tuned(config: Config, watermark_seconds: int = 0, **settings_: Any) -> Config:
    base = {"baseline_windows": 3, "min_history": 2, "median_multiple": 3.0, "max_spread_bps": 1000.0}
    spark = config.spark.model_copy(update={"watermark_seconds": watermark_seconds})
    return config.with_settings(SpreadSettings(**{**base, **settings_})).model_copy(update={"spark": spark})


def bps(bid: float, ask: float) -> float:
    return (ask - bid) / ((ask + bid) / 2) * 1e4


def test_window_metrics_leave_out_crossed_and_locked_quotes(config: Config) -> None:
    rows = [
        quote(1 * SEC, 1, 100.0, 101.0),
        quote(2 * SEC, 2, 101.0, 100.0),  # crossed
        quote(3 * SEC, 3, 100.0, 100.0),  # locked
        quote(4 * SEC, 4, 100.0, 100.5),
        quote(MIN + SEC, 5, 100.0, 100.1),  # closes w0 (watermark 0); w1 stays open
    ]
    tables = run(tuned(config), ["MOD-003"], rows)
    (m,) = tables["spread_metrics"].to_pylist()
    a, b = bps(100.0, 101.0), bps(100.0, 100.5)
    assert m == {
        "exchange": "binance",
        "symbol": "BTCUSDT",
        "window_start": 0,
        "window_end": MIN,
        "min_bps": b,
        "mean_bps": (a + b) / 2,
        "max_bps": a,
        "last_bps": b,
        "count": 2,
    }
    (crossed,) = alerts_of(tables, "MOD-003")
    assert crossed["kind"] == "crossed_book" and crossed["value"] == 1.0 and crossed["threshold"] == 0.0
    assert crossed["severity"] == "high" and crossed["event_ids"] == ["quote:binance:BTCUSDT:2"]
    assert crossed["alert_id"] == alert_id("MOD-003", "binance", "BTCUSDT", "crossed:0")
    assert crossed["evidence"] == {"crossed": 1}


def blowout_day(last_ask: float) -> list[Item]:
    """Baseline windows with spreads 10, 20 bps-ish (w0, w2; w1 holds only a crossed quote), then w3."""
    return [
        quote(1 * SEC, 1, 1000.0, 1001.0),
        quote(MIN + SEC, 2, 1001.0, 1000.0),
        quote(2 * MIN + SEC, 3, 1000.0, 1002.0),
        quote(3 * MIN + SEC, 4, 1000.0, last_ask),
        quote(4 * MIN + SEC, 5, 1000.0, 1001.0),  # closes w3
    ]


def test_blowout_against_the_median_of_windows_with_spreads(config: Config) -> None:
    median = (bps(1000.0, 1001.0) + bps(1000.0, 1002.0)) / 2
    tables = run(tuned(config), ["MOD-003"], blowout_day(1010.0))
    blowouts = [a for a in alerts_of(tables, "MOD-003") if a["kind"] == "spread_blowout"]
    (alert,) = blowouts
    assert alert["window_start"] == 3 * MIN and alert["value"] == bps(1000.0, 1010.0)
    assert alert["threshold"] == pytest.approx(3 * median, rel=1e-12)
    assert alert["severity"] == "high"  # 99.5 bps > 2 * 45 bps
    assert alert["evidence"] == {
        "mean": bps(1000.0, 1010.0),
        "median": median,
        "history": 2,
        "count": 1,
        "max_spread_bps": 1000.0,
    }
    assert alert["event_ids"] == []
    assert alert["alert_id"] == alert_id("MOD-003", "binance", "BTCUSDT", f"spread:{3 * MIN}")
    # w1 (crossed only) has no metrics row and is not part of the baseline
    assert [m["window_start"] for m in tables["spread_metrics"].to_pylist()] == [0, 2 * MIN, 3 * MIN]


def test_blowout_needs_min_history_and_a_mean_strictly_above_the_bound(config: Config) -> None:
    assert not [
        a
        for a in alerts_of(run(tuned(config, min_history=3), ["MOD-003"], blowout_day(1010.0)), "MOD-003")
        if a["kind"] == "spread_blowout"
    ]
    exact = bps(1000.0, 1010.0)
    at_cap = tuned(config, min_history=3, max_spread_bps=exact)
    assert not [
        a
        for a in alerts_of(run(at_cap, ["MOD-003"], blowout_day(1010.0)), "MOD-003")
        if a["kind"] == "spread_blowout"
    ]
    below_cap = tuned(config, min_history=3, max_spread_bps=exact * 0.9)
    (alert,) = [
        a
        for a in alerts_of(run(below_cap, ["MOD-003"], blowout_day(1010.0)), "MOD-003")
        if a["kind"] == "spread_blowout"
    ]
    assert alert["threshold"] == exact * 0.9 and alert["severity"] == "medium"


def test_late_quotes_are_left_out_and_open_windows_never_evaluated(config: Config) -> None:
    rows = [
        quote(1 * SEC, 1, 100.0, 101.0),
        quote(MIN + 30 * SEC, 2, 100.0, 100.2),
        quote(20 * SEC, 3, 100.0, 110.0),  # late: 0:20 < 1:30 - 10 s
        quote(2 * MIN + 15 * SEC, 4, 100.0, 100.2),  # closes w0 and w1? w1 ends 2:00, 2:15 - 10 s >= 2:00
        trade(2 * MIN + 20 * SEC, 1, 100.0, 1.0),
    ]
    metrics = run(tuned(config, watermark_seconds=10), ["MOD-003"], rows)["spread_metrics"].to_pylist()
    assert [(m["window_start"], m["count"], m["max_bps"]) for m in metrics] == [
        (0, 1, bps(100.0, 101.0)),
        (MIN, 1, bps(100.0, 100.2)),
    ]


def test_real_binance_futures_quotes_match_a_pandas_groupby(config: Config) -> None:
    raw = pd.read_csv(REAL_TAPES / "tardis" / "tardis_quotes.csv")
    rows = [
        quote(int(r.timestamp), i, float(r.bid_price), float(r.ask_price), exchange="binance-futures")
        for i, r in enumerate(raw.itertuples())
    ]
    tables = run(tuned(config, watermark_seconds=2, window_seconds=5), ["MOD-003"], rows, batch_rows=997)
    got = pd.DataFrame(tables["spread_metrics"].to_pylist()).sort_values("window_start")
    # the tape is in time order, so nothing is late; every window but the last is closed
    raw["w"] = raw["timestamp"] // (5 * SEC) * (5 * SEC)
    ok = raw[raw["bid_price"] < raw["ask_price"]].copy()
    ok["bps"] = bps(ok["bid_price"], ok["ask_price"])
    expect = ok.groupby("w")["bps"].agg(["min", "mean", "max", "last", "count"]).iloc[:-1]
    assert len(got) == len(expect) > 30
    assert got["window_start"].tolist() == expect.index.tolist()
    assert got["count"].tolist() == expect["count"].tolist()
    assert got["min_bps"].tolist() == expect["min"].tolist()
    assert got["last_bps"].tolist() == expect["last"].tolist()
    assert got["mean_bps"].to_numpy() == pytest.approx(expect["mean"].to_numpy(), rel=1e-12)
