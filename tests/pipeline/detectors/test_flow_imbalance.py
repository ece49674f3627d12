"""MOD-006 order-flow-imbalance: hand-computed windows and bounds, then any split and any interleaving
of the keys gives the one-batch result, which the independent reference agrees with."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from coattail.reference import from_wire, run_reference
from pipeline.alerts import alert_id
from pipeline.config import Config
from pipeline.detectors.flow_imbalance import FlowImbalanceSettings, imbalance_severity
from pipeline.testkit import Item, payloads
from pipeline.testkit import trade as wire_trade
from tests.pipeline.detectors.test_volume_anomaly import close, same_alerts
from tests.pipeline.detectors.windowed_kit import MIN, SEC, alerts_of, quote, run
from tests.pipeline.strategies import flow_streams

MODULES = ["MOD-006"]


def tuned(config: Config, watermark_seconds: int = 0, **settings_: Any) -> Config:
    spark = config.spark.model_copy(update={"watermark_seconds": watermark_seconds})
    values = {"min_notional_usd": 100.0, "threshold": 0.7, **settings_}
    return config.with_settings(FlowImbalanceSettings(**values)).model_copy(update={"spark": spark})


def buy(ts: int, tid: int, usd: float, symbol: str = "BTCUSDT") -> Item:
    return wire_trade(tid, 1.0, usd, ts, symbol=symbol, side="buy")


def sell(ts: int, tid: int, usd: float, symbol: str = "BTCUSDT") -> Item:
    return wire_trade(tid, 1.0, usd, ts, symbol=symbol, side="sell")


def metrics_of(tables: dict[str, pa.Table]) -> list[dict[str, Any]]:
    rows = tables["flow_metrics"].to_pylist() if "flow_metrics" in tables else []
    return sorted(rows, key=lambda m: (m["symbol"], m["window_start"]))


def test_exactly_at_both_bounds_fires_and_the_metrics_row_holds_the_window(config: Config) -> None:
    # w0: B 85, S 15 -> T 100 (= min_notional), imbalance 0.7 (= threshold); w1 closes it
    rows = [buy(5 * SEC, 1, 50.0), sell(6 * SEC, 2, 15.0), buy(7 * SEC, 3, 35.0), buy(MIN + SEC, 4, 1.0)]
    tables = run(tuned(config), MODULES, rows)
    (alert,) = alerts_of(tables, "MOD-006")
    assert alert["value"] == 0.7 and alert["threshold"] == 0.7 and alert["severity"] == "low"
    assert alert["kind"] == "flow_imbalance"
    assert alert["alert_id"] == alert_id("MOD-006", "binance", "BTCUSDT", 0)
    assert (alert["window_start"], alert["window_end"], alert["ts_event"]) == (0, MIN, MIN)
    assert alert["evidence"] == {
        "buy_notional_usd": 85.0,
        "sell_notional_usd": 15.0,
        "notional_usd": 100.0,
        "trades": 3,
        "direction": "buy",
    }
    # the dominant side's trades only, largest first in selection, listed in arrival order
    assert alert["event_ids"] == ["trade:binance:BTCUSDT:1", "trade:binance:BTCUSDT:3"]
    assert metrics_of(tables) == [
        {"exchange": "binance", "symbol": "BTCUSDT", "window_start": 0, "window_end": MIN,
         "buy_notional_usd": 85.0, "sell_notional_usd": 15.0, "notional_usd": 100.0, "imbalance": 0.7,
         "trades": 3}
    ]  # fmt: skip
    # the open w1 was never evaluated; just above either bound nothing fires
    assert alerts_of(run(tuned(config, min_notional_usd=100.01), MODULES, rows), "MOD-006") == []
    assert alerts_of(run(tuned(config, threshold=0.7001), MODULES, rows), "MOD-006") == []


def test_a_window_without_counted_trades_writes_nothing(config: Config) -> None:
    cfg = tuned(config, watermark_seconds=10)
    rows = [
        sell(5 * SEC, 1, 500.0),
        quote(MIN + 5 * SEC, 1, 99.0, 100.0),  # w1: a quote only
        sell(2 * MIN + 20 * SEC, 2, 1.0),
        sell(2 * MIN + 21 * SEC, 2, 1000.0),  # a duplicate: not counted
        buy(MIN + 50 * SEC, 3, 1e6),  # late (clock 2:21 - 10 s > 1:50): not counted, w1 stays empty
        buy(4 * MIN, 4, 1.0),
    ]
    tables = run(cfg, MODULES, rows)
    assert [(m["window_start"], m["sell_notional_usd"], m["trades"]) for m in metrics_of(tables)] == [
        (0, 500.0, 1),
        (2 * MIN, 1.0, 1),
    ]
    (alert,) = alerts_of(tables, "MOD-006")  # w2: T 1 < 100
    assert alert["window_start"] == 0 and alert["value"] == -1.0 and alert["severity"] == "critical"
    assert alert["evidence"]["direction"] == "sell"


def test_severity_steps() -> None:
    levels = [imbalance_severity(x) for x in (0.7, 0.79, -0.8, 0.89, 0.9, -0.99, 1.0, -1.0)]
    assert levels == ["low", "low", "medium", "medium", "high", "high", "critical", "critical"]


def test_event_ids_are_the_dominant_sides_fifty_largest(config: Config) -> None:
    rows = [buy(SEC, 1000 + i, float(1 + (i * 37) % 120)) for i in range(120)]
    rows += [sell(2 * SEC, 5000, 10_000.0), sell(3 * SEC, 5001, 1.0), buy(MIN + SEC, 9999, 1.0)]
    cfg = tuned(config, threshold=0.01)
    (alert,) = alerts_of(run(cfg, MODULES, rows), "MOD-006")
    assert alert["evidence"]["direction"] == "sell"
    assert alert["event_ids"] == ["trade:binance:BTCUSDT:5000", "trade:binance:BTCUSDT:5001"]
    flipped = [buy(SEC, 1000 + i, float(1 + (i * 37) % 120)) for i in range(120)] + [
        buy(MIN + SEC, 9999, 1.0)
    ]
    (alert,) = alerts_of(run(cfg, MODULES, flipped), "MOD-006")
    usd = {1000 + i: float(1 + (i * 37) % 120) for i in range(120)}
    top = sorted(usd, key=lambda t: (-usd[t], t))[:50]
    assert alert["event_ids"] == [f"trade:binance:BTCUSDT:{t}" for t in sorted(top)]


def canonical(tables: dict[str, pa.Table]) -> dict[str, Any]:
    return {
        "alerts": sorted(tables["alerts"].to_pylist(), key=lambda a: a["alert_id"]),
        "flow": metrics_of(tables),
    }


@settings(max_examples=40)
@given(rows=flow_streams(), batch=st.integers(1, 17))
def test_any_split_and_interleaving_gives_the_batch_result_and_the_reference(
    config: Config, rows: list[Item], batch: int
) -> None:
    cfg = tuned(config, watermark_seconds=10, min_notional_usd=10.0, threshold=0.6)
    whole = canonical(run(cfg, MODULES, rows))
    assert canonical(run(cfg, MODULES, rows, batch)) == whole
    per_key = {
        s: [r for r in rows if not isinstance(r, bytes) and r[1]["symbol"] == s]
        for s in ("BTCUSDT", "ETHUSDT")
    }
    keys_apart = canonical(run(cfg, MODULES, per_key["BTCUSDT"] + per_key["ETHUSDT"]))
    assert keys_apart == whole
    ref = run_reference(from_wire(payloads(rows)), cfg.model_copy(update={"modules": tuple(MODULES)}))
    assert same_alerts(ref.alert_rows(), whole["alerts"])
    got, want = whole["flow"], ref.flow_metrics.to_dicts()
    assert [(m["symbol"], m["window_start"]) for m in got] == [(m["symbol"], m["window_start"]) for m in want]
    for g, w in zip(got, want, strict=True):
        assert close(g, {k: w[k] for k in g})
