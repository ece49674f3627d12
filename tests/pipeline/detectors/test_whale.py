"""MOD-001 against hand-computed expectations (docs/DETECTORS.md)."""

from __future__ import annotations

import json

from pipeline.alerts import alert_id
from pipeline.testkit import T0, alerts_of, run_engine, small_config, trade


def test_exactly_at_threshold_fires_and_just_below_does_not() -> None:
    cfg = small_config()
    # BTCUSDT threshold 1,000,000 USD; USDT rate 1.0
    results = run_engine(cfg, [trade(1, 50_000.0, 20.0, T0), trade(2, 50_000.0, 19.9999, T0 + 1)])
    alerts = alerts_of(results)
    assert list(alerts["event_ids"]) == [["trade:binance:BTCUSDT:1"]]
    row = alerts.iloc[0]
    assert row["alert_id"] == alert_id("MOD-001", "binance", "BTCUSDT", 1)
    assert (row["kind"], row["severity"], row["value"], row["threshold"]) == ("whale_trade", "low", 1e6, 1e6)
    assert row["ts_event"] == T0
    evidence = json.loads(row["evidence"])
    assert evidence == {
        "price": 50_000.0,
        "qty": 20.0,
        "side": "buy",
        "notional_usd": 1e6,
        "quote_currency": "USDT",
        "trade_id": 1,
        "multiple": 1.0,
    }
    assert list(json.loads(row["evidence"])) == sorted(evidence)


def test_severity_by_multiple_edges() -> None:
    cfg = small_config()
    items = [
        trade(i, 1_000.0, q, T0 + i)
        for i, q in [(1, 1_999.0), (2, 2_000.0), (3, 4_999.0), (4, 5_000.0), (5, 9_999.0), (6, 10_000.0)]
    ]
    got = dict(
        zip(
            alerts_of(run_engine(cfg, items))["evidence"].map(lambda e: json.loads(e)["trade_id"]),
            alerts_of(run_engine(cfg, items))["severity"],
            strict=True,
        )
    )
    assert got == {1: "low", 2: "medium", 3: "medium", 4: "high", 5: "high", 6: "critical"}


def test_unknown_symbol_uses_default_and_unknown_quote_currency_is_ignored() -> None:
    cfg = small_config(**{"settings.MOD-001.default_threshold_usd": 10_000})
    items = [
        trade(1, 10.0, 1_000.0, T0, symbol="DOGEUSDC"),  # unknown symbol: default 10k, USDC rate 1
        trade(2, 10.0, 999.0, T0, symbol="DOGEUSDC"),
        trade(3, 1e9, 1e9, T0, symbol="BTCEUR"),  # EUR has no rate: no notional, no alert
        trade(4, 1e9, 1e9, T0, symbol="BTC-EUR", exchange="coinbase"),
        trade(5, 20_000.0, 1.0, T0, symbol="ETH-USD", exchange="coinbase"),  # dash symbol, USD, 500k thr
        trade(6, 600_000.0, 1.0, T0, symbol="ETH-USD", exchange="coinbase"),
    ]
    alerts = alerts_of(run_engine(cfg, items))
    assert sorted(alerts["event_ids"].map(lambda ids: ids[0])) == [
        "trade:binance:DOGEUSDC:1",
        "trade:coinbase:ETH-USD:6",
    ]
    eth = alerts[alerts["symbol"] == "ETH-USD"].iloc[0]
    assert eth["threshold"] == 500_000.0 and json.loads(eth["evidence"])["quote_currency"] == "USD"


def test_duplicates_do_not_fire_twice_but_late_trades_do() -> None:
    cfg = small_config()
    items = [
        trade(1, 50_000.0, 30.0, T0 + 60_000_000),
        trade(1, 50_000.0, 30.0, T0 + 60_000_000),  # duplicate id: no second alert
        trade(2, 50_000.0, 30.0, T0),  # 60 s behind: late, still checked
    ]
    alerts = alerts_of(run_engine(cfg, items))
    assert sorted(alerts["event_ids"].map(lambda ids: ids[0])) == [
        "trade:binance:BTCUSDT:1",
        "trade:binance:BTCUSDT:2",
    ]


def test_alert_carries_latency_stamps_of_the_trade() -> None:
    from core.events import to_wire
    from pipeline.detectors.registry import ModuleRegistry
    from pipeline.engine import Engine
    from pipeline.parse import parse_batch
    from pipeline.testkit import raw_table

    cfg = small_config()
    raw = raw_table([to_wire(*trade(1, 50_000.0, 30.0, T0), ts_sent=T0 + 5)])
    raw = raw.set_column(5, "ts_ingest", __import__("pyarrow").array([T0 + 9]))
    result = Engine(cfg, ModuleRegistry().build(cfg)).process(parse_batch(raw), 0)
    row = result.alerts.to_pylist()[0]
    assert (row["ts_sent"], row["ts_ingest"], row["ts_written"]) == (T0 + 5, T0 + 9, None)
