"""MOD-007 sliced-whale: runs closed by the ending trade or by the clock, every edge of the spec, then
any split and any interleaving of the keys gives the one-batch result, which the reference agrees with."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from coattail.reference import from_wire, run_reference
from pipeline.alerts import alert_id
from pipeline.config import Config
from pipeline.detectors.sliced_whale import SlicedWhaleSettings
from pipeline.detectors.whale import WhaleSettings
from pipeline.testkit import Item, payloads
from pipeline.testkit import trade as wire_trade
from tests.pipeline.detectors.test_volume_anomaly import same_alerts
from tests.pipeline.detectors.windowed_kit import SEC, alerts_of, quote, run
from tests.pipeline.strategies import flow_streams

MODULES = ["MOD-007"]
MS = 1_000
T1 = 1_000.0


def tuned(config: Config, **settings_: Any) -> Config:
    spark = config.spark.model_copy(update={"watermark_seconds": 10})
    whale = WhaleSettings(default_threshold_usd=T1, thresholds_usd={})
    return config.with_settings(SlicedWhaleSettings(**settings_), whale).model_copy(update={"spark": spark})


def fill(ts: int, tid: int, usd: float, side: str = "buy", symbol: str = "BTCUSDT") -> Item:
    return wire_trade(tid, 1.0, usd, ts, symbol=symbol, side=side)


def sliced(
    config: Config, rows: list[Item], batch: int | None = None, **settings_: Any
) -> list[dict[str, Any]]:
    return alerts_of(run(tuned(config, **settings_), MODULES, rows, batch), "MOD-007")


def test_a_run_closed_by_the_opposite_trade_fires_and_that_trade_starts_the_next(config: Config) -> None:
    rows = [fill(10 * SEC + i * 400 * MS, 1 + i, 250.0) for i in range(4)]  # 1000 USD = T1 exactly
    rows += [fill(12 * SEC, 5, 999.0, "sell"), fill(12 * SEC + 500 * MS, 6, 1.0, "sell")]
    rows += [fill(12 * SEC + 900 * MS, 7, 1.0, "sell")]  # open at the end: never evaluated
    (alert,) = sliced(config, rows)
    assert alert["alert_id"] == alert_id("MOD-007", "binance", "BTCUSDT", 1)
    assert alert["kind"] == "sliced_whale" and alert["value"] == 1000.0 and alert["threshold"] == T1
    assert alert["severity"] == "low" and alert["ts_event"] == 10 * SEC + 1200 * MS
    assert alert["window_start"] is None and alert["window_end"] is None
    assert alert["evidence"] == {
        "trades": 4, "side": "buy", "first_ts": 10 * SEC, "last_ts": 10 * SEC + 1200 * MS, "vwap": 1.0,
        "largest_usd": 250.0, "notional_usd": 1000.0,
    }  # fmt: skip
    assert alert["event_ids"] == [f"trade:binance:BTCUSDT:{i}" for i in range(1, 5)]
    # the sell run (1001 USD) closes once a later event passes its last ts + 1 s
    closer = fill(12 * SEC + 1900 * MS + 1, 8, 1.0)
    assert sorted(a["alert_id"] for a in sliced(config, [*rows, closer])) == sorted(
        alert_id("MOD-007", "binance", "BTCUSDT", t) for t in (1, 5)
    )


def test_the_clock_closes_a_run_only_strictly_past_last_plus_the_gap(config: Config) -> None:
    rows = [fill(i * 500 * MS, 1 + i, 400.0) for i in range(3)]  # last at 1.0 s
    assert sliced(config, [*rows, quote(2 * SEC, 1, 99.0, 100.0)]) == []  # exactly last + 1 s: open
    (alert,) = sliced(config, [*rows, quote(2 * SEC + 1, 1, 99.0, 100.0)])
    assert alert["value"] == 1200.0
    # a quote of another key does not move this key's clock
    assert sliced(config, [*rows, quote(5 * SEC, 1, 99.0, 100.0, symbol="ETHUSDT")]) == []
    # a trade exactly at last + gap still extends the run; one beyond it ends the run and starts the next
    at_gap = [*rows, fill(2 * SEC, 9, 400.0), quote(9 * SEC, 2, 99.0, 100.0)]
    assert [a["evidence"]["trades"] for a in sliced(config, at_gap)] == [4]
    past = [*rows, fill(2 * SEC + 1, 9, 400.0), fill(2 * SEC + 2, 10, 400.0), fill(2 * SEC + 3, 11, 400.0)]
    past += [quote(9 * SEC, 2, 99.0, 100.0)]
    got = sorted(sliced(config, past), key=lambda a: a["ts_event"])
    assert [(a["evidence"]["trades"], a["event_ids"][0]) for a in got] == [
        (3, "trade:binance:BTCUSDT:1"),
        (3, "trade:binance:BTCUSDT:9"),
    ]


def test_a_negative_time_difference_counts_as_zero(config: Config) -> None:
    rows = [fill(10 * SEC, 1, 400.0), fill(9_500 * MS, 2, 400.0), fill(10_400 * MS, 3, 400.0)]
    (alert,) = sliced(config, [*rows, quote(12 * SEC, 1, 99.0, 100.0)])
    assert alert["evidence"]["trades"] == 3 and alert["evidence"]["first_ts"] == 10 * SEC
    assert alert["ts_event"] == 10_400 * MS
    # the difference is to the previous trade: 10.9 s - 9.5 s > 1 s starts a new run
    split = [*rows[:2], fill(10_900 * MS, 3, 400.0), quote(12 * SEC, 1, 99.0, 100.0)]
    assert sliced(config, split) == []
    # a trade older than the clock by more than the gap extends the run, which then closes at once (the
    # clock is already past its last ts + 1 s); the next trade starts a new run
    behind = [fill(10 * SEC, 1, 400.0), fill(10_900 * MS, 2, 400.0), fill(8 * SEC, 3, 400.0)]
    behind += [fill(8_100 * MS, 4, 400.0), fill(8_200 * MS, 5, 400.0)]
    (alert,) = sliced(config, behind)
    assert alert["evidence"]["trades"] == 3 and alert["ts_event"] == 8 * SEC


def test_a_single_trade_at_t1_suppresses_and_the_minimum_count_holds(config: Config) -> None:
    closer = quote(30 * SEC, 1, 99.0, 100.0)
    whale_inside = [fill(0, 1, 100.0), fill(100 * MS, 2, T1), fill(200 * MS, 3, 100.0), closer]
    assert sliced(config, whale_inside) == []
    just_below = [fill(0, 1, 100.0), fill(100 * MS, 2, T1 - 0.01), fill(200 * MS, 3, 100.0), closer]
    assert [a["severity"] for a in sliced(config, just_below)] == ["low"]
    two = [fill(0, 1, 600.0), fill(100 * MS, 2, 600.0), closer]
    assert sliced(config, two) == [] and len(sliced(config, two, min_trades=2)) == 1
    short = [fill(0, 1, 300.0), fill(100 * MS, 2, 300.0), fill(200 * MS, 3, 399.99), closer]
    assert sliced(config, short) == [] and len(sliced(config, short, threshold_fraction=0.99)) == 1


def test_severity_follows_the_mod001_multiples(config: Config) -> None:
    def severity(total: float) -> str:
        n = 12
        rows = [fill(i * 10 * MS, 1 + i, total / n) for i in range(n)] + [quote(9 * SEC, 1, 99.0, 100.0)]
        (alert,) = sliced(config, rows)
        return str(alert["severity"])

    assert [severity(t) for t in (1200.0, 2400.0, 6000.0, 11_400.0)] == ["low", "medium", "high", "critical"]
    # with a fraction below 1 a run under T1 itself is the lowest level
    rows = [fill(i * 10 * MS, 1 + i, 200.0) for i in range(3)] + [quote(9 * SEC, 1, 99.0, 100.0)]
    assert [a["severity"] for a in sliced(config, rows, threshold_fraction=0.5)] == ["low"]


def test_event_ids_are_the_first_fifty_and_duplicates_and_late_trades_do_not_count(config: Config) -> None:
    rows = [fill(SEC + i * 10 * MS, 100 + i, 20.0) for i in range(60)]
    rows += [fill(SEC + 600 * MS, 100, 5_000.0)]  # a duplicate id: ignored, no whale inside
    rows += [fill(SEC + 601 * MS, 999, 5_000.0, "sell")]  # still part of the clock, not of the run
    (alert,) = sliced(config, rows)
    assert alert["event_ids"] == [f"trade:binance:BTCUSDT:{100 + i}" for i in range(50)]
    assert alert["evidence"]["trades"] == 60 and alert["value"] == 1200.0


def canonical(tables: dict[str, pa.Table]) -> list[dict[str, Any]]:
    return sorted(tables["alerts"].to_pylist(), key=lambda a: a["alert_id"])


@settings(max_examples=40)
@given(rows=flow_streams(), batch=st.integers(1, 17))
def test_any_split_and_interleaving_gives_the_batch_result_and_the_reference(
    config: Config, rows: list[Item], batch: int
) -> None:
    cfg = tuned(config).with_settings(WhaleSettings(default_threshold_usd=1_500.0, thresholds_usd={}))
    whole = canonical(run(cfg, MODULES, rows))
    assert canonical(run(cfg, MODULES, rows, batch)) == whole
    by_key = sorted(rows, key=lambda r: 0 if isinstance(r, bytes) else r[1]["symbol"] != "BTCUSDT")
    assert canonical(run(cfg, MODULES, by_key)) == whole
    ref = run_reference(from_wire(payloads(rows)), cfg.model_copy(update={"modules": tuple(MODULES)}))
    assert same_alerts(ref.alert_rows(), whole)
