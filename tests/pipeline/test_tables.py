"""Table definitions: every table the engine, the loader and the reprocessor write has one, and the
definitions' own rules (derived partition column, conforming rows, one definition per name)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, ClassVar

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coattail.run.outputs import DQ_COLUMNS, SPREAD_COLUMNS, RunOutputs
from core.errors import ConfigError, PipelineError
from core.tape import TapeWriter, tape_schema
from pipeline.detectors.base import AnyDetector, BaseDetector, DetectorInput, DetectorOutput
from pipeline.detectors.registry import ModuleRegistry
from pipeline.engine import Engine
from pipeline.jobs.loader import bronze_batches, read_manifest
from pipeline.jobs.reprocessor import output_tables, run_key
from pipeline.parse import parse_batch
from pipeline.tables import (
    ALERTS,
    BRONZE,
    CORE_TABLES,
    DATE_COLUMN,
    TRADES,
    TableDef,
    all_tables,
    registered_metric_tables,
    tables_for,
    tables_named,
)
from pipeline.testkit import T0, payloads, quote, raw_table, small_config, trade

BTC_PAIR = ["binance:BTCUSDT", "coinbase:BTC-USD"]
EVERY_MODULE = small_config(
    modules=ModuleRegistry().ids(), instruments=BTC_PAIR, **{"settings.MOD-005.pairs": [BTC_PAIR]}
)
EVENTS = [
    trade(1, 50_000.0, 30.0, T0),
    trade(1, 50_000.0, 30.0, T0 + 1),  # a duplicate: MOD-004 counts it
    quote(1, 49_999.0, 50_001.0, T0 + 2),
    quote(2, 50_001.0, 49_999.0, T0 + 61_000_000),  # crossed, and closes the first minute
    trade(2, 50_010.0, 1.0, T0 + 62_000_000),
]


def _parsed() -> pa.Table:
    raw = raw_table([*payloads(EVENTS), b"not json"])
    return pa.Table.from_batches([parse_batch(batch) for batch in raw.to_batches()])


def test_every_table_the_engine_writes_is_defined_with_its_schema() -> None:
    detectors = ModuleRegistry().build(EVERY_MODULE)
    result = Engine(EVERY_MODULE, detectors).process(_parsed(), 0)
    defined = {t.name: t for t in tables_for(detectors)}
    assert set(result.tables) == set(defined)
    for name, data in result.tables.items():
        assert data.schema == defined[name].schema, name
    # the batch exercised the tables, so the schemas above were checked on real rows
    assert {n for n, t in result.tables.items() if t.num_rows} >= {"trades", "quotes", "quarantine", "alerts"}


def test_all_tables_of_a_config_are_the_core_tables_and_its_modules_tables() -> None:
    names = [t.name for t in all_tables(EVERY_MODULE)]
    assert names[: len(CORE_TABLES)] == [t.name for t in CORE_TABLES]
    assert set(names[len(CORE_TABLES) :]) == {t.name for t in registered_metric_tables()}
    assert len(names) == len(set(names))
    assert [t.name for t in all_tables(small_config(modules=["MOD-001"]))] == [t.name for t in CORE_TABLES]


def test_reprocessor_outputs_are_defined_tables() -> None:
    modules = ModuleRegistry().ids()
    result = run_key(_parsed(), EVERY_MODULE, modules)
    written = {name for name in result.column("table").to_pylist() if not name.startswith("__")}
    assert written and written <= {t.name for t in output_tables(modules)}
    assert {t.name for t in output_tables(modules)} == {ALERTS.name} | {
        t.name for t in registered_metric_tables()
    }


def test_loader_batches_are_bronze_rows(tmp_path: Path) -> None:
    with TapeWriter(tmp_path / "tape") as writer:
        rows = [{**trade(i, 100.0, 1.0, T0 + i)[1], "seq": i} for i in range(3)]
        writer.write("trade", pa.Table.from_pylist(rows, schema=tape_schema("trade")))
        writer.close(source="test")
    manifest = read_manifest(tmp_path / "tape")
    batches = list(bronze_batches(tmp_path / "tape", "trade", manifest))
    assert [b.schema for b in batches] == [BRONZE["trade"].schema]
    assert sum(b.num_rows for b in batches) == 3


def test_run_capture_files_are_named_after_the_tables(tmp_path: Path) -> None:
    empty = RunOutputs(
        alerts=ALERTS.schema.empty_table(), dq=pl.DataFrame(schema=DQ_COLUMNS),
        spread_metrics=pl.DataFrame(schema=SPREAD_COLUMNS), records_in=0, valid=0,
    )
    empty.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "alerts.parquet", "alpha_scores.parquet", "basis_metrics.parquet", "dq_metrics.parquet",
        "flow_metrics.parquet", "signals.parquet", "spread_metrics.parquet", "whale_impact.parquet",
    ]
    assert {p.stem for p in tmp_path.iterdir()} <= {t.name for t in all_tables(EVERY_MODULE)}
    assert RunOutputs.load(tmp_path).alerts.schema == ALERTS.schema
    # a run directory written before MOD-005 and MOD-006 has no basis or flow file: read as no rows
    (tmp_path / "basis_metrics.parquet").unlink()
    (tmp_path / "flow_metrics.parquet").unlink()
    assert RunOutputs.load(tmp_path).basis_metrics.is_empty()
    assert RunOutputs.load(tmp_path).flow_metrics.is_empty()


@given(st.lists(st.integers(0, 4_102_444_800_000_000), min_size=1, max_size=20))
def test_event_date_is_the_utc_day_of_ts_event(stamps: list[int]) -> None:
    data = pa.Table.from_pylist(
        [{**trade(i, 1.0, 1.0, ts)[1], "ts_event": ts} for i, ts in enumerate(stamps)]
    )
    stored = TRADES.with_partition_columns(TRADES.conform(data))
    assert stored.schema == TRADES.stored_schema
    expected = [dt.datetime.fromtimestamp(ts / 1e6, dt.UTC).date() for ts in stamps]
    assert stored.column(DATE_COLUMN).to_pylist() == expected


def test_conform_orders_casts_and_fills_columns() -> None:
    data = pa.table({"extra": [1], "ts_event": pa.array([5], pa.int32()), "alert_id": ["a"]})
    out = ALERTS.conform(data)
    assert out.schema == ALERTS.schema
    assert out.column("ts_event").to_pylist() == [5]
    assert out.column("ts_written").to_pylist() == [None]


def test_a_definition_names_only_its_own_columns() -> None:
    with pytest.raises(PipelineError, match="not in its schema"):
        TableDef(name="t", schema=pa.schema([("a", pa.int64())]), key=("b",), description="")
    with pytest.raises(PipelineError, match="not in its schema"):  # event_date needs a ts_event
        TableDef(name="t", schema=pa.schema([("a", pa.int64())]), key=("a",), description="",
                 partition_by=(DATE_COLUMN,))


def _detector(table: TableDef) -> type[AnyDetector]:
    class Declares(BaseDetector[Any]):
        module_id: ClassVar[str] = "MOD-999"
        name: ClassVar[str] = "declares"
        inputs = ("trade",)
        metric_tables = (table,)

        def detect(self, frames: DetectorInput) -> DetectorOutput:
            return DetectorOutput()

    return Declares


def test_one_definition_per_table_name() -> None:
    one = TableDef(name="m", schema=pa.schema([("a", pa.int64())]), key=("a",), description="m")
    other = TableDef(name="m", schema=pa.schema([("a", pa.string())]), key=("a",), description="m")
    assert tables_for([_detector(one), _detector(one)])[-1] == one
    with pytest.raises(PipelineError, match="declared twice"):
        tables_for([_detector(one), _detector(other)])
    shadow = TableDef(name="alerts", schema=ALERTS.schema, key=("alert_id",), description="")
    with pytest.raises(PipelineError, match="core table"):
        tables_for([_detector(shadow)])


def test_tables_are_found_by_name_or_refused_by_name() -> None:
    assert tables_named(["spread_metrics", "trades"])[1] is TRADES
    with pytest.raises(ConfigError, match="no table definition for \\['nope'\\]"):
        tables_named(["trades", "nope"])
