"""Reprocessor: bronze tables -> detectors in Spark per key; the same alerts as the streaming engine."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest

from coattail.reference import from_tape, run_reference
from core.errors import ConfigError
from core.tape import Tape, TapeWriter, tape_schema
from pipeline.config import Config, RuntimeSettings
from pipeline.detectors.flow_imbalance import FlowImbalanceSettings
from pipeline.detectors.sliced_whale import SlicedWhaleSettings
from pipeline.detectors.volume_anomaly import VolumeAnomalySettings
from pipeline.jobs.loader import load_tape
from pipeline.jobs.reprocessor import reprocess
from pipeline.sinks.iceberg import IcebergSink
from pipeline.testkit import Item
from tests.pipeline.detectors.windowed_kit import MIN, SEC, run

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

MODULES = ["MOD-001", "MOD-002", "MOD-003", "MOD-004", "MOD-006", "MOD-007"]
T0 = 1_700_000_000 * SEC // MIN * MIN


def market(path: Path, seed: int = 7) -> Path:
    """Two symbols, 20 minutes, a volume spike, a whale, a crossed book, a duplicate trade, taker sides
    in streaks (one-sided minutes, runs of fills)."""
    rng = random.Random(seed)
    trades: list[dict[str, Any]] = []
    quotes: list[dict[str, Any]] = []
    events: list[tuple[int, str, dict[str, Any]]] = []
    for sym, px in (("BTCUSDT", 50_000.0), ("ETHUSDT", 3_000.0)):
        tid = 1
        for i in range(1200):
            ts = T0 + i * SEC + rng.randint(0, 999_999)
            qty = rng.uniform(0.01, 2.0) * (200 if sym == "BTCUSDT" and 15 * 60 <= i < 15 * 60 + 20 else 1)
            events.append(
                (
                    ts,
                    "trade",
                    {
                        "exchange": "binance",
                        "symbol": sym,
                        "trade_id": tid,
                        "price": px,
                        "qty": qty,
                        "side": "sell" if (i // 7) % 3 == 0 or 600 <= i < 660 else "buy",
                        "ts_event": ts,
                        "ts_recv": None,
                    },
                )
            )
            if i == 100:
                events.append((ts, "trade", {**events[-1][2]}))  # duplicate id
            tid += 1
            bid, ask = px - 0.5, px + 0.5
            if sym == "ETHUSDT" and i == 700:
                bid, ask = ask, bid
            events.append(
                (
                    ts + 1,
                    "quote",
                    {
                        "exchange": "binance",
                        "symbol": sym,
                        "bid_px": bid,
                        "bid_qty": 1.0,
                        "ask_px": ask,
                        "ask_qty": 1.0,
                        "update_id": i,
                        "ts_event": ts + 1,
                        "ts_recv": None,
                    },
                )
            )
    events.sort(key=lambda e: e[0])
    for seq, (_, kind, row) in enumerate(events):
        (trades if kind == "trade" else quotes).append({**row, "seq": seq})
    with TapeWriter(path) as w:
        w.write("trade", pa.Table.from_pylist(trades, schema=tape_schema("trade")))
        w.write("quote", pa.Table.from_pylist(quotes, schema=tape_schema("quote")))
        w.close(source="synthetic")
    return path


def tuned(config: Config, tmp_path: Path) -> Config:
    va = VolumeAnomalySettings(
        baseline_windows=10, min_history=5, z_threshold=4.0, std_floor_usd=1000.0, min_notional_usd=100_000.0
    )
    flow = FlowImbalanceSettings(min_notional_usd=100_000.0, threshold=0.6)
    sliced = SlicedWhaleSettings(threshold_fraction=0.1)
    return config.with_settings(va, flow, sliced).model_copy(
        update={"runtime": RuntimeSettings(state_dir=tmp_path / "state")}
    )


def tape_items(tape: Path) -> list[Item]:
    """The tape's events in tape order, as wire items."""
    t = Tape.open(tape)
    rows = [("trade", r) for r in t.read("trade").to_pylist()] + [
        ("quote", r) for r in t.read("quote").to_pylist()
    ]
    rows.sort(key=lambda kr: kr[1]["seq"])
    return [(k, {n: v for n, v in r.items() if n != "seq"}) for k, r in rows]  # type: ignore[misc]


def key_of(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What must agree: id, kind, severity, event ids, and the value to 12 significant digits."""
    return sorted(
        (r["alert_id"], r["kind"], float(f"{r['value']:.12g}"), r["severity"], tuple(r["event_ids"]))
        for r in rows
    )


@pytest.mark.spark
@pytest.mark.parametrize("shuffle", [False, True], ids=["by-partition", "by-shuffle"])
def test_reprocessor_equals_streaming_engine(
    spark: SparkSession, config: Config, tmp_path: Path, shuffle: bool
) -> None:
    cfg = tuned(config, tmp_path)
    tape = market(tmp_path / "tape")
    sink = IcebergSink(cfg)
    load_tape(tape, sink)
    result = reprocess(
        spark,
        cfg,
        modules=MODULES,
        start_us=T0,
        end_us=T0 + 3600 * SEC,
        name="check",
        sink=sink,
        shuffle=shuffle,
    )
    assert result.events == 2 * 1200 * 2 + 2
    assert set(result.key_cpu_s) == {"binance:BTCUSDT", "binance:ETHUSDT"}
    alerts = result.tables["alerts"].to_pylist()
    kinds = {a["kind"] for a in alerts}
    assert {"volume_spike", "crossed_book", "whale_trade", "flow_imbalance", "sliced_whale"} <= kinds
    items = tape_items(tape)
    for batch in (None, 1000, 333):
        streamed = run(cfg, MODULES, items, batch)
        assert key_of(streamed["alerts"].to_pylist()) == key_of(alerts)
    # and the independent Polars reference agrees on the same tape
    ref = run_reference(from_tape(Tape.open(tape)), cfg.model_copy(update={"modules": tuple(MODULES)}))
    assert key_of(ref.alert_rows()) == key_of(alerts)
    got_metrics = sorted(
        result.tables["spread_metrics"].to_pylist(), key=lambda m: (m["symbol"], m["window_start"])
    )
    ref_metrics = sorted(ref.spread_metrics.to_dicts(), key=lambda m: (m["symbol"], m["window_start"]))
    assert [(m["symbol"], m["window_start"], m["count"]) for m in got_metrics] == [
        (m["symbol"], m["window_start"], m["count"]) for m in ref_metrics
    ]
    assert [m["mean_bps"] for m in got_metrics] == pytest.approx(
        [m["mean_bps"] for m in ref_metrics], rel=1e-9
    )
    by_window = lambda m: (m["symbol"], m["window_start"])  # noqa: E731
    got_flow = sorted(result.tables["flow_metrics"].to_pylist(), key=by_window)
    ref_flow = sorted(ref.flow_metrics.to_dicts(), key=by_window)
    assert [(m["symbol"], m["window_start"], m["trades"]) for m in got_flow] == [
        (m["symbol"], m["window_start"], m["trades"]) for m in ref_flow
    ]
    assert [m["imbalance"] for m in got_flow] == pytest.approx([m["imbalance"] for m in ref_flow], rel=1e-9)
    # written under the output name, read back from Iceberg, live alerts table untouched
    assert sink.read("alerts_check").num_rows == len(alerts)
    assert sink.read("spread_metrics_check").num_rows == result.tables["spread_metrics"].num_rows
    assert not sink.catalog.table_exists(f"{sink.namespace}.alerts")
    # a second run with the same name replaces its output
    reprocess(
        spark,
        cfg,
        modules=["MOD-003"],
        start_us=T0,
        end_us=T0 + 3600 * SEC,
        name="check",
        sink=sink,
        shuffle=shuffle,
    )
    assert {a["detector"] for a in sink.read("alerts_check").to_pylist()} == {"MOD-003"}


def test_bad_output_names_and_ranges_are_refused(config: Config) -> None:
    with pytest.raises(ConfigError, match="output name"):
        reprocess(None, config, modules=["MOD-001"], start_us=0, end_us=1, name="Live Alerts")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown detector"):
        reprocess(None, config, modules=["MOD-999"], start_us=0, end_us=1, name="x")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="empty time range"):
        reprocess(None, config, modules=["MOD-001"], start_us=5, end_us=5, name="x")  # type: ignore[arg-type]


@pytest.mark.spark
def test_a_rerun_without_alerts_leaves_empty_outputs(
    spark: SparkSession, config: Config, tmp_path: Path
) -> None:
    cfg = tuned(config, tmp_path)
    sink = IcebergSink(cfg)
    load_tape(market(tmp_path / "tape"), sink)

    def rerun(modules: list[str], start_us: int, end_us: int) -> dict[str, int]:
        result = reprocess(
            spark, cfg, modules=modules, start_us=start_us, end_us=end_us, name="rerun", sink=sink
        )
        assert set(result.written) == set(result.tables)
        return {base: sink.read(f"{base}_rerun").num_rows for base in result.written}

    first = rerun(MODULES, T0, T0 + 3600 * SEC)
    assert first["alerts"] > 0 and first["spread_metrics"] > 0 and first["dq_metrics"] > 0
    # the first 5 minutes hold no whale, no crossed book and no blow-out: events, metrics, no alerts
    second = rerun(["MOD-001", "MOD-003"], T0, T0 + 5 * MIN)
    assert second["alerts"] == 0 and 0 < second["spread_metrics"] < first["spread_metrics"]
    # a module not chosen this time leaves no stale table behind
    assert not sink.catalog.table_exists(f"{sink.namespace}.dq_metrics_rerun")
    # a range without any event: every declared table exists and is empty
    assert rerun(["MOD-003"], T0 + 2 * 3600 * SEC, T0 + 3 * 3600 * SEC) == {"alerts": 0, "spread_metrics": 0}


@pytest.mark.spark
def test_reprocessing_a_delta_run_equals_reprocessing_the_iceberg_run(
    spark: SparkSession, tmp_path: Path
) -> None:
    from pipeline.runner import PipelineRunner
    from pipeline.sinks.delta import DeltaSink
    from pipeline.sinks.memory import MemoryAlertSink
    from tests.pipeline.sinks.test_spark_writers import lite
    from tests.pipeline.test_runner_tape import CFG, write_tape

    iceberg = lite(tmp_path / "state")
    delta = lite(tmp_path / "state", format="delta")
    # one streaming run writes its bronze both ways: Iceberg through pyiceberg, Delta through delta-spark
    sinks = [IcebergSink(iceberg), DeltaSink(delta, spark)]
    PipelineRunner(iceberg, checkpoint=tmp_path / "ck", source=write_tape(tmp_path / "tape"), spark=spark,
                   table_sinks=sinks, alert_sinks=[MemoryAlertSink()],
                   max_records_per_batch=40).run(until_idle=True, timeout=300)
    modules = list(CFG.modules)
    results = {
        name: reprocess(spark, cfg, modules=modules, start_us=0, end_us=2**62, name=name)
        for name, cfg in (("from_iceberg", iceberg), ("from_delta", delta))
    }
    by_iceberg, by_delta = results["from_iceberg"], results["from_delta"]
    assert by_delta.events == by_iceberg.events > 0
    assert by_iceberg.tables["alerts"].num_rows > 0
    assert set(by_delta.tables) == set(by_iceberg.tables)
    def ordered(data: pa.Table) -> list[tuple[object, ...]]:
        return sorted((tuple(r.values()) for r in data.to_pylist()), key=repr)

    for table, data in by_iceberg.tables.items():
        assert ordered(by_delta.tables[table]) == ordered(data), table
    assert IcebergSink(delta).read("alerts_from_delta").num_rows == by_delta.tables["alerts"].num_rows
