"""State-store mode with Spark's writer: the executors write bronze and per-instrument tables
(``pipeline.keyed_writes``). The same tape gives the same rows in every table as the driver path and
pyiceberg; the driver collects no bronze row; a restart in the middle of the tape writes every batch once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.arrow_ipc import from_ipc, to_ipc
from pipeline.config import Config, RuntimeSettings
from pipeline.engine import BatchResult
from pipeline.keyed import RECORDS, assemble
from pipeline.keyed_writes import STAMPS_SCHEMA, narrow, stamps_of, table_rows
from pipeline.runner import PipelineRunner
from pipeline.sinks.base import FrameTableSink, TableSink
from pipeline.sinks.delta import DeltaSink
from pipeline.sinks.iceberg import IcebergSink
from pipeline.sinks.memory import MemoryAlertSink, MemoryTableSink
from pipeline.sinks.spark_iceberg import SparkIcebergSink
from pipeline.tables import ALERTS, QUARANTINE, TRADES, schemas_of
from pipeline.testkit import T0, run_engine, small_config, trade
from tests.pipeline.keyed_kit import crash_after, keyed_config, write_tape

KEYED = keyed_config("state_store")
DRIVER = keyed_config("driver")


def lite(cfg: Config, state: Path, namespace: str = "coattail") -> Config:
    storage = cfg.storage.model_copy(update={"namespace": namespace})
    runtime = RuntimeSettings(profile="lite", state_dir=state)
    return cfg.model_copy(update={"storage": storage, "runtime": runtime})


def rows(sink: TableSink, table: str) -> list[str]:
    """The table's rows as stored by its definition, sorted; alerts without their write stamp (each run
    stamps its own)."""
    data: pa.Table = sink.read(table)  # type: ignore[attr-defined]
    conformed = sink.definitions[table].conform(data)
    if table == ALERTS.name:
        conformed = conformed.drop_columns(["ts_written"])
    return sorted(repr(tuple(r.values())) for r in conformed.to_pylist())


# --- the pieces, without Spark --------------------------------------------------------------------


def _output(tables: dict[str, pa.Table], records: int) -> pa.Table:
    names = [RECORDS, *tables]
    return pa.table({
        "exchange": ["binance"] * len(names), "symbol": ["BTCUSDT"] * len(names), "table": names,
        "rows": [records, *(t.num_rows for t in tables.values())],
        "payload": [b"", *(to_ipc(t) for t in tables.values())],
    })


@given(st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=12))
def test_narrow_keeps_the_driver_tables_and_turns_bronze_into_stamps(sizes: list[int]) -> None:
    items = [trade(i, 100.0, float(q) / 1000, T0 + i) for i, q in enumerate(sizes)]
    result = run_engine(small_config(), items)[0]
    tables = {n: t for n, t in result.tables.items() if t.num_rows}
    output = _output(tables, result.records_in)
    for stamped in (frozenset(), frozenset({"trades", "quarantine"})):
        out = pa.Table.from_batches(list(narrow(output.to_batches(), {ALERTS.name}, stamped)))
        assert out.column("rows") == output.column("rows")  # counts always travel
        by_name = dict(zip(out.column("table").to_pylist(), out.column("payload").to_pylist(), strict=True))
        if ALERTS.name in tables:
            assert from_ipc(by_name[ALERTS.name]).equals(tables[ALERTS.name])
        stamps = by_name["trades"]
        if stamped:
            assert from_ipc(stamps).equals(stamps_of(tables["trades"]))
        else:
            assert stamps is None
        assert all(by_name[n] is None for n in tables if n not in {ALERTS.name, "trades"})
        # assembled with the bronze tables elsewhere: the counts add up, no bronze row on the driver
        schemas = schemas_of(result_tables := [TRADES, QUARANTINE, ALERTS]) | {
            n: t.schema for n, t in tables.items() if n not in {t.name for t in result_tables}}
        got = assemble(out, 0, schemas, elsewhere=set(schemas) - {ALERTS.name})
        assert (got.records_in, got.valid, got.quarantined) == (
            result.records_in, result.valid, result.quarantined)
        assert set(got.tables) == {ALERTS.name}
        if stamped:
            assert got.stamps is not None and got.stamps.num_rows == tables["trades"].num_rows
        else:
            assert got.stamps is None


def test_table_rows_are_the_stored_rows_of_the_payloads() -> None:
    parts = [run_engine(small_config(), [trade(i, 100.0, 1.0, T0 + i)])[0].tables["trades"] for i in range(3)]
    batch = pa.table({"payload": pa.array([to_ipc(p) for p in parts] + [None], pa.binary())}).to_batches()[0]
    got = pa.Table.from_batches(list(table_rows([batch], TRADES)))
    assert got.schema == TRADES.stored_schema
    assert got.equals(TRADES.with_partition_columns(pa.concat_tables(parts)))


def test_stamps_of_fills_what_a_table_lacks() -> None:
    table = pa.table({"ts_event": pa.array([1, None], pa.int64()), "ts_ingest": pa.array([3, 4], pa.int64())})
    got = stamps_of(table)
    assert got.schema == STAMPS_SCHEMA
    assert got.to_pylist() == [{"ts_event": 1, "ts_sent": None, "ts_ingest": 3},
                               {"ts_event": None, "ts_sent": None, "ts_ingest": 4}]


# --- through Spark --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tape(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tape(tmp_path_factory.mktemp("keyed-writes") / "t")


def _keyed_run(spark: Any, tape: Path, ckpt: Path, sink: FrameTableSink, **kw: Any) -> list[BatchResult]:
    results: list[BatchResult] = []
    runner = PipelineRunner(KEYED, checkpoint=ckpt, source=tape, spark=spark, table_sinks=[sink],
                            alert_sinks=[MemoryAlertSink()], max_records_per_batch=80,
                            on_batch=results.append, **kw)
    assert runner.keyed_writes is not None
    runner.run(until_idle=True, timeout=300)
    return results


@pytest.mark.spark
def test_executor_writes_give_the_same_rows_as_the_driver_path_and_pyiceberg(
    spark: Any, tape: Path, tmp_path: Path
) -> None:
    memory = MemoryTableSink()
    pyiceberg = IcebergSink(lite(DRIVER, tmp_path / "state", "by_driver"))
    driver = PipelineRunner(DRIVER, checkpoint=tmp_path / "d", source=tape, spark=spark,
                            table_sinks=[memory, pyiceberg], alert_sinks=[MemoryAlertSink()],
                            max_records_per_batch=80)
    assert driver.keyed_writes is None
    driver.run(until_idle=True, timeout=300)
    # state-store mode collecting everything (a sink that cannot write DataFrames): the bytes before
    collected: list[BatchResult] = []
    before = PipelineRunner(KEYED, checkpoint=tmp_path / "c", source=tape, spark=spark,
                            table_sinks=[MemoryTableSink()], alert_sinks=[MemoryAlertSink()],
                            max_records_per_batch=80, on_batch=collected.append)
    assert before.keyed_writes is None
    before.run(until_idle=True, timeout=300)

    sink = SparkIcebergSink(lite(KEYED, tmp_path / "state", "by_executors"), spark)
    results = _keyed_run(spark, tape, tmp_path / "k", sink, event_stamps=True)
    names = [t.name for t in driver.tables()]
    assert rows(memory, "trades") and rows(memory, "alerts") and rows(memory, "whale_impact")
    for name in names:
        assert rows(sink, name) == rows(memory, name) == rows(pyiceberg, name), name
    delta = DeltaSink(lite(KEYED, tmp_path / "state", "delta_by_executors"), spark)
    by_delta = _keyed_run(spark, tape, tmp_path / "kd", delta)
    assert all(set(r.tables) <= {"alerts"} for r in by_delta)
    for name in names:
        assert rows(delta, name) == rows(memory, name), name
    # nothing per event on the driver but the three stamps; every extra action is timed
    assert all(r.stamps is not None for r in results)
    assert sum(r.stamps.num_rows for r in results if r.stamps is not None) == 240
    assert all(set(r.tables) <= {"alerts"} for r in results)
    for result, whole in zip(results, collected, strict=True):
        assert result.timing is not None and whole.timing is not None
        assert 0 < result.timing.collected_bytes < whole.timing.collected_bytes
        assert {"write:trades", "write:quotes", "write:dq_metrics"} <= set(result.timing.actions_us)
        assert all(us > 0 for us in result.timing.actions_us.values())


@pytest.mark.spark
@pytest.mark.parametrize("sink_type", [SparkIcebergSink, DeltaSink], ids=["iceberg", "delta"])
def test_a_restart_in_the_middle_writes_every_batch_once(
    spark: Any, tape: Path, tmp_path: Path, sink_type: type[SparkIcebergSink | DeltaSink]
) -> None:
    whole = sink_type(lite(KEYED, tmp_path / "state", "whole"), spark)
    _keyed_run(spark, tape, tmp_path / "ck-whole", whole)
    ckpt = tmp_path / "ck"

    def runner() -> PipelineRunner:
        sink = sink_type(lite(KEYED, tmp_path / "state", "restart"), spark)
        return PipelineRunner(KEYED, checkpoint=ckpt, source=tape, spark=spark, table_sinks=[sink],
                              alert_sinks=[MemoryAlertSink()], max_records_per_batch=80)

    crash_after(runner(), 2)  # the executors appended the last batch; Spark runs it again
    again = runner()
    again.run(until_idle=True, timeout=300)
    restarted = sink_type(lite(KEYED, tmp_path / "state", "restart"), spark)
    restarted.open(again.tables())
    whole.open(again.tables())
    for name in (t.name for t in again.tables()):
        assert rows(restarted, name) == rows(whole, name), name
