"""MOD-002 volume-anomaly: hand-computed windows, then streaming = batch for any batch split."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coattail.reference import from_wire, run_reference
from pipeline.alerts import alert_id
from pipeline.config import Config
from pipeline.detectors.registry import ModuleRegistry
from pipeline.detectors.volume_anomaly import VolumeAnomalySettings, severity_for
from pipeline.engine import Engine
from pipeline.parse import parse_batch
from pipeline.testkit import Item, payloads, raw_table
from tests.pipeline.detectors.windowed_kit import MIN, SEC, alerts_of, quote, run, trade


def tuned(config: Config, watermark_seconds: int = 0, **settings_: Any) -> Config:
    base = {
        "baseline_windows": 4,
        "min_history": 2,
        "z_threshold": 3.0,
        "std_floor_usd": 1.0,
        "min_notional_usd": 0.0,
    }
    spark = config.spark.model_copy(update={"watermark_seconds": watermark_seconds})
    return config.with_settings(VolumeAnomalySettings(**{**base, **settings_})).model_copy(
        update={"spark": spark}
    )


def windows_day(extra: list[Item] | None = None) -> list[Item]:
    """w0: 100 USD, w1: empty, w2: 200 USD (two trades), w3: 1000 USD, w4: open (never evaluated)."""
    rows = [
        trade(0 * MIN + 5 * SEC, 1, 10.0, 10.0),
        trade(2 * MIN + 1 * SEC, 2, 10.0, 5.0),
        trade(2 * MIN + 2 * SEC, 3, 10.0, 15.0),
        trade(3 * MIN + 30 * SEC, 4, 100.0, 10.0),
        trade(4 * MIN + 1 * SEC, 5, 1e6, 1e3),
    ]
    return rows + (extra or [])


def test_hand_computed_windows_with_an_empty_one_and_exactly_the_threshold(config: Config) -> None:
    alerts = alerts_of(run(tuned(config), ["MOD-002"], windows_day()), "MOD-002")
    by_start = {a["window_start"]: a for a in alerts}
    # w0: no history; w1: empty, never fires; w2: history [100, 0] -> mean 50, std 50, z = 3.0 exactly
    assert sorted(by_start) == [2 * MIN, 3 * MIN]
    w2 = by_start[2 * MIN]
    assert w2["value"] == 3.0 and w2["severity"] == "low" and w2["threshold"] == 3.0
    assert w2["evidence"] == {"notional_usd": 200.0, "mean": 50.0, "std": 50.0, "history": 2, "trades": 2}
    assert w2["alert_id"] == alert_id("MOD-002", "binance", "BTCUSDT", 2 * MIN)
    assert w2["ts_event"] == w2["window_end"] == 3 * MIN
    # largest notional first in selection, listed in arrival order
    assert w2["event_ids"] == ["trade:binance:BTCUSDT:2", "trade:binance:BTCUSDT:3"]
    # w3: history [100, 0, 200] -> mean 100, std sqrt(20000/3); the open w4 (1e9 USD) is never evaluated
    w3 = by_start[3 * MIN]
    std = math.sqrt(20000 / 3)
    assert w3["value"] == pytest.approx((1000 - 100) / std, rel=1e-12)
    assert w3["severity"] == "critical"  # z = 11.02 >= 3 * 3


def test_no_alert_below_the_minimum_history_or_the_minimum_notional(config: Config) -> None:
    alerts = alerts_of(run(tuned(config, min_history=3), ["MOD-002"], windows_day()), "MOD-002")
    assert [a["window_start"] for a in alerts] == [3 * MIN]
    at_min = alerts_of(run(tuned(config, min_notional_usd=1000.0), ["MOD-002"], windows_day()), "MOD-002")
    assert [a["window_start"] for a in at_min] == [3 * MIN]  # v = 1000 >= 1000 fires; w2 (200) does not
    above = alerts_of(run(tuned(config, min_notional_usd=1000.01), ["MOD-002"], windows_day()), "MOD-002")
    assert above == []


def test_late_and_duplicate_trades_are_left_out(config: Config) -> None:
    cfg = tuned(config, watermark_seconds=10)
    rows = windows_day()
    # after the w4 trade (max 4:01, watermark 3:51): a w2 trade is late, a repeated id is a duplicate
    rows += [trade(2 * MIN + 3 * SEC, 6, 10.0, 1e6), trade(3 * MIN + 55 * SEC, 4, 100.0, 10.0)]
    rows += [trade(5 * MIN + 20 * SEC, 7, 1.0, 1.0)]  # closes w4 (5:20 - 10 s >= 5:00)
    alerts = {a["window_start"]: a for a in alerts_of(run(cfg, ["MOD-002"], rows), "MOD-002")}
    assert alerts[2 * MIN]["evidence"]["notional_usd"] == 200.0
    assert alerts[3 * MIN]["evidence"]["notional_usd"] == 1000.0
    assert alerts[4 * MIN]["evidence"]["notional_usd"] == 1e9


def test_quotes_advance_the_key_clock(config: Config) -> None:
    rows = [*windows_day()[:4], quote(4 * MIN, 1, 99.0, 101.0)]
    assert [a["window_start"] for a in alerts_of(run(tuned(config), ["MOD-002"], rows), "MOD-002")] == [
        2 * MIN,
        3 * MIN,
    ]
    other_key = [*windows_day()[:4], quote(4 * MIN, 1, 99.0, 101.0, symbol="ETHUSDT")]
    assert [a["window_start"] for a in alerts_of(run(tuned(config), ["MOD-002"], other_key), "MOD-002")] == [
        2 * MIN,
    ]


def test_a_symbol_without_usd_rate_is_ignored(config: Config) -> None:
    rows = [
        trade(0, 1, 10.0, 10.0, symbol="BTCEUR"),
        *[trade(m * MIN, 2 + m, 10.0, 10.0 * (1 + 1000 * (m == 9)), symbol="BTCEUR") for m in range(1, 12)],
    ]
    assert alerts_of(run(tuned(config), ["MOD-002"], rows), "MOD-002") == []
    in_usdt = [trade(m * MIN, 1 + m, 10.0, 10.0 * (1 + 1000 * (m == 9))) for m in range(12)]
    assert [a["window_start"] for a in alerts_of(run(tuned(config), ["MOD-002"], in_usdt), "MOD-002")] == [
        9 * MIN
    ]


def test_event_ids_are_the_fifty_largest_in_arrival_order(config: Config) -> None:
    rows = [trade(5 * SEC, i, 1.0, 1.0) for i in range(1, 4)] + [trade(MIN + SEC, 4, 1.0, 1.0)]
    rows += [trade(2 * MIN + SEC, 100 + i, 1.0, float(1 + (i * 37) % 120)) for i in range(120)]
    rows += [trade(3 * MIN + SEC, 999, 1.0, 1.0)]
    (alert,) = alerts_of(run(tuned(config), ["MOD-002"], rows), "MOD-002")
    qty = {100 + i: float(1 + (i * 37) % 120) for i in range(120)}
    top = sorted(qty, key=lambda t: (-qty[t], t))[:50]
    assert alert["event_ids"] == [f"trade:binance:BTCUSDT:{t}" for t in sorted(top)]


def test_severity_steps() -> None:
    assert [severity_for(z, 4.0) for z in (4.0, 5.99, 6.0, 8.0, 12.0)] == [
        "low",
        "low",
        "medium",
        "high",
        "critical",
    ]


@st.composite
def streams(draw: st.DrawFn) -> list[Item]:
    """Two keys, trades and quotes, mostly in time order with some jitter (late events, duplicates)."""
    n = draw(st.integers(20, 120))
    rows: list[Item] = []
    t = 0
    for i in range(n):
        t += draw(st.integers(0, 40 * SEC))
        ts = max(0, t - draw(st.sampled_from([0, 0, 0, 5 * SEC, 30 * SEC])))
        sym = draw(st.sampled_from(["BTCUSDT", "ETHUSDT"]))
        if draw(st.booleans()):
            tid = draw(st.sampled_from([i, i, i, max(i - 1, 0)]))
            rows.append(trade(ts, tid, 10.0, draw(st.sampled_from([1.0, 2.0, 50.0, 5000.0])), symbol=sym))
        else:
            bid = draw(st.sampled_from([100.0, 100.5, 101.0]))
            rows.append(quote(ts, i, bid, draw(st.sampled_from([100.0, 100.5, 101.0, 103.0])), symbol=sym))
    return rows


def canonical(tables: dict[str, pa.Table]) -> dict[str, list[dict[str, Any]]]:
    return {
        "alerts": sorted(tables["alerts"].to_pylist(), key=lambda a: a["alert_id"]),
        "spread": sorted(
            tables["spread_metrics"].to_pylist(), key=lambda m: (m["symbol"], m["window_start"])
        ),
    }


def close(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal keys; floats within 1e-9 relative, everything else equal."""
    assert a.keys() == b.keys(), (a, b)
    for k, v in a.items():
        assert (v == pytest.approx(b[k], rel=1e-9)) if isinstance(v, float) else v == b[k], (k, v, b[k])
    return True


def same_alerts(ref: list[dict[str, Any]], got: list[dict[str, Any]]) -> bool:
    """Same ids, kinds, severities and event ids; values and evidence within float rounding."""
    ref, got = sorted(ref, key=lambda a: a["alert_id"]), sorted(got, key=lambda a: a["alert_id"])
    assert [a["alert_id"] for a in ref] == [a["alert_id"] for a in got]
    for r, g in zip(ref, got, strict=True):
        assert (r["kind"], r["severity"], list(r["event_ids"])) == (
            g["kind"],
            g["severity"],
            list(g["event_ids"]),
        )
        assert r["value"] == pytest.approx(g["value"], rel=1e-9)
        assert close(json.loads(r["evidence"]), json.loads(g["evidence"]))
    return True


def same_metrics(ref: list[dict[str, Any]], got: list[dict[str, Any]]) -> bool:
    """Same spread-metric rows, floats within rounding."""
    key = ("exchange", "symbol", "window_start")
    ref = sorted(ref, key=lambda m: tuple(m[k] for k in key))
    got = sorted(got, key=lambda m: tuple(m[k] for k in key))
    assert [tuple(m[k] for k in key) for m in ref] == [tuple(m[k] for k in key) for m in got]
    for r, g in zip(ref, got, strict=True):
        assert close({k: r[k] for k in g}, g)
    return True


@settings(max_examples=25)
@given(rows=streams(), batch=st.integers(1, 17))
def test_streaming_equals_batch_for_any_split(config: Config, rows: list[Item], batch: int) -> None:
    cfg = tuned(config, watermark_seconds=10, min_history=2, z_threshold=1.0)
    whole = canonical(run(cfg, ["MOD-002", "MOD-003"], rows))
    assert canonical(run(cfg, ["MOD-002", "MOD-003"], rows, batch)) == whole
    # and the independent Polars reference, written from docs/DETECTORS.md alone, agrees
    ref = run_reference(from_wire(payloads(rows)), cfg.model_copy(update={"modules": ("MOD-002", "MOD-003")}))
    assert same_alerts(ref.alert_rows(), whole["alerts"])
    assert same_metrics(ref.spread_metrics.to_dicts(), whole["spread"])


def random_stream(seed: int, n: int = 900) -> list[Item]:
    """Trades and quotes of two keys over about 40 minutes, with spikes, late events and duplicates."""
    rng = random.Random(seed)
    rows: list[Item] = []
    t = 0
    for i in range(n):
        t += rng.randint(0, 5 * SEC)
        ts = max(0, t - rng.choice([0, 0, 0, 0, 3 * SEC, 40 * SEC]))
        sym = rng.choice(["BTCUSDT", "ETHUSDT"])
        if rng.random() < 0.6:
            qty = rng.choice([1.0, 2.0, 3.0]) * (400.0 if rng.random() < 0.02 else 1.0)
            rows.append(trade(ts, rng.choice([i, i, i, max(i - 1, 0)]), 100.0, qty, symbol=sym))
        else:
            bid = rng.choice([100.0, 100.0, 100.1])
            rows.append(quote(ts, i, bid, bid + rng.choice([-0.1, 0.0, 0.05, 0.1, 2.0]), symbol=sym))
    return rows


@pytest.mark.parametrize("batch", [50, 123])
def test_state_survives_a_restart_from_the_checkpoint(config: Config, tmp_path: Path, batch: int) -> None:
    cfg = tuned(config, watermark_seconds=10, z_threshold=2.0, min_history=3)
    items = random_stream(11)
    table = parse_batch(raw_table(payloads(items)).to_batches()[0])
    whole = canonical(run(cfg, ["MOD-002", "MOD-003"], items))
    assert whole["alerts"] and whole["spread"]
    modules = ModuleRegistry().build(cfg.model_copy(update={"modules": ("MOD-002", "MOD-003")}))
    state_dir = tmp_path / "state"
    engine = Engine(cfg, modules, state_dir=state_dir)
    parts: dict[str, list[pa.Table]] = {"alerts": [], "spread_metrics": []}
    cut = table.num_rows // batch // 2
    for batch_id in range(cut):
        result = engine.process(table.slice(batch_id * batch, batch), batch_id)
        engine.commit(batch_id)
        for name in parts:
            parts[name].append(result.tables[name])
    # the process dies while batch ``cut`` is in flight: its output was never committed
    engine.process(table.slice(cut * batch, batch), cut)
    fresh = ModuleRegistry().build(cfg.model_copy(update={"modules": ("MOD-002", "MOD-003")}))
    restarted = Engine(cfg, fresh, state_dir=state_dir)
    for batch_id in range(cut, (table.num_rows + batch - 1) // batch):
        result = restarted.process(table.slice(batch_id * batch, batch), batch_id)
        restarted.commit(batch_id)
        for name in parts:
            parts[name].append(result.tables[name])
    assert canonical({n: pa.concat_tables(ts) for n, ts in parts.items()}) == whole
