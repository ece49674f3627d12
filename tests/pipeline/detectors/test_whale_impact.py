"""MOD-008 whale-impact: each horizon evaluated at the first event past ``t + h`` with the price as of
``t + h``, edges exactly at the bounds, late and out-of-order arrivals around ``t + h``, whales spanning
micro-batches and restarts; any split and interleaving gives the batch result, which the reference
agrees with (MOD-001, MOD-007, MOD-008 and MOD-009 together: the property test of both modules)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from coattail.reference import from_wire, run_reference
from coattail.run.outputs import IMPACT_COLUMNS
from pipeline.alerts import alert_id
from pipeline.config import Config
from pipeline.testkit import Item, payloads, run_engine
from pipeline.testkit import trade as wire_trade
from tests.pipeline.detectors.market_kit import MODULES, market_config
from tests.pipeline.detectors.test_volume_anomaly import same_alerts
from tests.pipeline.detectors.windowed_kit import SEC, alerts_of, quote, run
from tests.pipeline.strategies import price_streams

T = 1_700_000_100_000_000
"""The whale's time in the hand-computed cases."""


def fill(ts: int, tid: int, price: float, qty: float = 1.0, side: str = "buy") -> Item:
    return wire_trade(tid, price, qty, ts, side=side)


def impact(tables: dict[str, pa.Table]) -> list[dict[str, Any]]:
    return sorted(tables["whale_impact"].to_pylist(), key=lambda r: (r["whale_alert_id"], r["horizon_s"]))


def whale(price: float = 100.0, side: str = "buy", ts: int = T, tid: int = 1) -> Item:
    """A MOD-001 whale (20 x the 1,500 USD threshold at price 100)."""
    return fill(ts, tid, price, 3_000.0 / price * 10, side)


def test_a_horizon_waits_for_the_clock_strictly_past_t_plus_h_and_a_trade_at_t_plus_h_is_its_price(
    config: Config,
) -> None:
    cfg = market_config(config)
    rows = [whale(), fill(T + 2 * SEC, 2, 100.1), fill(T + 5 * SEC, 3, 100.3)]
    assert impact(run(cfg, MODULES, rows)) == []  # the clock is at t + 5 s, not past it
    rows.append(quote(T + 5 * SEC + 1, 1, 99.0, 101.0))
    (row,) = impact(run(cfg, MODULES, rows))
    assert (row["horizon_s"], row["price"], row["ts_horizon"]) == (5, 100.3, T + 5 * SEC)
    assert row["impact_bps"] == (100.3 - 100.0) / 100.0 * 1e4
    assert alerts_of(run(cfg, MODULES, rows), "MOD-008")[0]["evidence"]["price"] == 100.3


def test_a_trade_at_or_before_t_plus_h_arriving_after_the_clock_passed_it_changes_nothing(
    config: Config,
) -> None:
    cfg = market_config(config)
    rows = [whale(), fill(T + 6 * SEC, 2, 101.0), fill(T + 4 * SEC, 3, 105.0), fill(T + 30 * SEC, 4, 99.0)]
    got = impact(run(cfg, MODULES, rows))
    # at 5 s: the last counted trade before the one that took the clock past t + 5 s is the whale itself
    assert [(r["horizon_s"], r["price"]) for r in got] == [(5, 100.0), (20, 105.0)]
    # the 20 s horizon: the late-arriving trade at t + 4 s was the last counted one before t + 30 s


def test_the_first_horizon_past_the_threshold_fires_once_either_way_with_severity_steps(
    config: Config,
) -> None:
    cfg = market_config(config, impact={"threshold_bps": 78.125})
    # a sell whale at 128: the price falls 1 (78.125 bps its way, exactly at the threshold) by 5 s
    rows = [
        whale(128.0, "sell"),
        fill(T + 5 * SEC, 2, 127.0),
        fill(T + 6 * SEC, 3, 120.0),
        fill(T + 21 * SEC, 4, 90.0),
    ]
    (alert,) = alerts_of(run(cfg, MODULES, rows), "MOD-008")
    whale_id = alert_id("MOD-001", "binance", "BTCUSDT", 1)
    assert alert["alert_id"] == alert_id("MOD-008", "binance", "BTCUSDT", whale_id)
    assert (alert["kind"], alert["value"], alert["ts_event"], alert["severity"]) == (
        "price_impact",
        78.125,
        T + 5 * SEC,
        "low",
    )
    assert alert["evidence"] == {
        "horizon_s": 5,
        "p0": 128.0,
        "price": 127.0,
        "side": "sell",
        "whale_alert_id": whale_id,
        "whale_detector": "MOD-001",
    }
    assert alert["event_ids"] == ["trade:binance:BTCUSDT:1"]
    assert alert["ts_sent"] is None
    # a buy whale the price went against: negative, and 4x the threshold is high
    rows = [whale(128.0, "buy"), fill(T + 5 * SEC, 2, 128.0 - 4.0), fill(T + 6 * SEC, 3, 128.0)]
    cfg = market_config(config, impact={"threshold_bps": 78.125, "horizons_s": (5,)})
    (alert,) = alerts_of(run(cfg, MODULES, rows), "MOD-008")
    assert (alert["value"], alert["severity"]) == (-312.5, "high")


def test_below_the_threshold_writes_rows_and_no_alert(config: Config) -> None:
    cfg = market_config(config)
    rows = [whale(), fill(T + 6 * SEC, 2, 100.1), fill(T + 21 * SEC, 3, 100.19)]
    got = run(cfg, MODULES, rows)
    # as of t + 5 s the last trade is the whale itself; as of t + 20 s the one at t + 6 s
    assert [round(r["impact_bps"], 6) for r in impact(got)] == [0.0, 10.0]
    assert alerts_of(got, "MOD-008") == []


def test_a_late_whale_is_evaluated_at_its_arrival_and_beyond_the_retention_not_at_all(config: Config) -> None:
    cfg = market_config(config)
    rows = [
        fill(T, 1, 100.0),
        fill(T + 3 * SEC, 2, 101.0),
        fill(T + 8 * SEC, 3, 102.0),
        fill(T + 30 * SEC, 4, 103.0),
        whale(100.0, ts=T + 1 * SEC, tid=5),
    ]
    got = run(cfg, MODULES, rows)
    # both horizons are past when the late whale arrives: priced from history, decided at its arrival
    assert [(r["horizon_s"], r["price"]) for r in impact(got)] == [(5, 101.0), (20, 102.0)]
    (alert,) = alerts_of(got, "MOD-008")
    assert alert["ts_event"] == T + 6 * SEC
    # retention = 20 s + the 10 s watermark: a whale 31 s older than the clock gets no row at 5 s
    rows = [fill(T, 1, 100.0), fill(T + 40 * SEC, 2, 101.0), whale(100.0, ts=T + 4 * SEC, tid=5)]
    assert [r["horizon_s"] for r in impact(run(cfg, MODULES, rows))] == [20]


def test_a_sliced_whale_is_measured_from_its_vwap_and_last_fill(config: Config) -> None:
    cfg = market_config(config, impact={"threshold_bps": 500.0})
    fills = [fill(T + i * SEC, 10 + i, p, 4.0, "sell") for i, p in enumerate((100.0, 99.0, 98.0))]
    rows = [*fills, fill(T + 2 * SEC + 5 * SEC, 20, 90.0, 1.0, "buy"), fill(T + 40 * SEC, 21, 90.0)]
    got = run(cfg, MODULES, rows)
    (first, second) = impact(got)
    assert first["whale_detector"] == "MOD-007" and first["p0"] == (100 + 99 + 98) / 3
    assert first["ts_whale"] == T + 2 * SEC and first["side"] == "sell"
    # the buy at exactly t + 5 s closes the run and is its price as of t + 5 s (the fill at 40 s decides)
    assert (first["price"], first["impact_bps"]) == (90.0, -(90.0 - first["p0"]) / first["p0"] * 1e4)
    assert (second["horizon_s"], second["price"]) == (20, 90.0)
    (alert,) = alerts_of(got, "MOD-008")
    assert alert["evidence"]["whale_detector"] == "MOD-007" and len(alert["event_ids"]) == 3


def test_a_whale_spanning_micro_batches_and_restarts_gives_the_one_batch_result(
    config: Config, tmp_path: Path
) -> None:
    cfg = market_config(config)
    rows = [
        fill(T - SEC, 0, 100.0),
        whale(),
        *[fill(T + i * SEC, 1 + i, 100 + i * 0.1) for i in range(1, 26)],
    ]
    whole = run(cfg, MODULES, rows)
    for size in (1, 2, 5):
        assert impact(run(cfg, MODULES, rows, size)) == impact(whole)
    restarted = run_engine(cfg, rows, cuts=range(3, len(rows), 3), state_dir=tmp_path / "state")
    rows_after = sorted(
        (r for b in restarted for r in b.tables["whale_impact"].to_pylist()), key=lambda r: r["horizon_s"]
    )
    assert rows_after == impact(whole) and len(rows_after) == 2


def canonical(tables: dict[str, pa.Table]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    alerts = sorted(tables["alerts"].to_pylist(), key=lambda a: a["alert_id"])
    return alerts, impact(tables)


@settings(max_examples=40)
@given(rows=price_streams(), batch=st.integers(1, 17))
def test_any_split_and_interleaving_gives_the_batch_result_and_the_reference(
    config: Config, rows: list[Item], batch: int
) -> None:
    cfg = market_config(config)
    whole = canonical(run(cfg, MODULES, rows))
    assert canonical(run(cfg, MODULES, rows, batch)) == whole
    by_key = sorted(rows, key=lambda r: 0 if isinstance(r, bytes) else r[1]["symbol"] != "BTCUSDT")
    assert canonical(run(cfg, MODULES, by_key)) == whole
    ref = run_reference(from_wire(payloads(rows)), cfg)
    assert same_alerts(ref.alert_rows(), whole[0])
    want = ref.whale_impact.sort(["whale_alert_id", "horizon_s"]).to_dicts()
    assert [{k: r[k] for k in IMPACT_COLUMNS} for r in whole[1]] == want
