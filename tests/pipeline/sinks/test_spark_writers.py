"""Spark's writers (Iceberg through Spark's JDBC catalog, Delta) against pyiceberg's: the same tape gives
the same rows in every table; pyiceberg and Spark share the lite catalog whichever creates a table first;
maintenance compacts and expires without losing the batch markers exactly-once needs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pytest

from pipeline.config import Config, RuntimeSettings
from pipeline.runner import PipelineRunner
from pipeline.sinks.base import TableSink
from pipeline.sinks.delta import DeltaSink
from pipeline.sinks.iceberg import IcebergSink, partition_columns
from pipeline.sinks.memory import MemoryAlertSink, MemoryTableSink
from pipeline.sinks.spark_iceberg import SparkIcebergSink
from pipeline.sinks.spark_io import arrow_frame
from pipeline.tables import TRADES
from pipeline.testkit import T0, run_engine, small_config, trade
from tests.pipeline.test_runner_tape import CFG, write_tape

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.spark


def lite(tmp: Path, config: Config = CFG, **storage: object) -> Config:
    cfg = config.model_copy(update={"storage": config.storage.model_copy(update=storage)})
    return cfg.model_copy(update={"runtime": RuntimeSettings(profile="lite", state_dir=tmp)})


def rows(sink: TableSink, table: str) -> list[tuple[object, ...]]:
    """The table's rows as stored by its definition, in a fixed order."""
    data: pa.Table = sink.read(table)  # type: ignore[attr-defined]
    conformed = sink.definitions[table].conform(data)
    return sorted((tuple(r.values()) for r in conformed.to_pylist()), key=repr)


def test_the_same_tape_gives_the_same_rows_through_every_writer_and_format(
    spark: SparkSession, tmp_path: Path
) -> None:
    tape = write_tape(tmp_path / "tape")
    cfg = lite(tmp_path / "state")
    memory = MemoryTableSink()
    written = [IcebergSink(cfg), SparkIcebergSink(cfg.model_copy(update={"storage": cfg.storage.model_copy(
        update={"namespace": "by_spark"})}), spark), DeltaSink(cfg, spark)]
    runner = PipelineRunner(cfg, checkpoint=tmp_path / "ck", source=tape, spark=spark,
                            table_sinks=[memory, *written], alert_sinks=[MemoryAlertSink()],
                            max_records_per_batch=40)
    runner.run(until_idle=True, timeout=300)
    names = [t.name for t in runner.tables()]
    assert rows(memory, "trades") and rows(memory, "alerts") and rows(memory, "dq_metrics")
    for sink in written:
        for name in names:
            assert rows(sink, name) == rows(memory, name), f"{sink.name}: {name}"


@pytest.mark.parametrize("first", ["pyiceberg", "spark"])
def test_pyiceberg_and_spark_share_the_lite_catalog_whichever_creates_the_tables(
    spark: SparkSession, tmp_path: Path, first: str
) -> None:
    cfg = lite(tmp_path)
    batches = [run_engine(small_config(), [trade(i, 100.0, 1.0, T0 + i)])[0].tables for i in range(1, 4)]
    make: dict[str, Callable[[], TableSink]] = {
        "pyiceberg": lambda: IcebergSink(cfg), "spark": lambda: SparkIcebergSink(cfg, spark)}
    creator = make[first]()
    creator.open([TRADES])
    other = make["spark" if first == "pyiceberg" else "pyiceberg"]()
    other.open([TRADES])
    # one writer per table and writer id (the pipeline's rule); two writer ids share the table here
    assert creator.write(0, "query:a", {"trades": batches[0]["trades"]}) == {"trades": True}
    assert other.write(0, "query:b", {"trades": batches[1]["trades"]}) == {"trades": True}
    assert other.write(1, "query:b", {"trades": batches[2]["trades"]}) == {"trades": True}
    # each side, restarted, finds the other's markers
    for kind in make:
        again = make[kind]()
        again.open([TRADES])
        assert again.write(0, "query:a", {"trades": batches[0]["trades"]}) == {"trades": False}
        assert again.write(1, "query:b", {"trades": batches[2]["trades"]}) == {"trades": False}
        assert again.writers("trades") == {"query:a", "query:b"}
    assert rows(creator, "trades") == rows(other, "trades")
    assert sorted(int(str(r[2])) for r in rows(other, "trades")) == [1, 2, 3]
    handle = IcebergSink(cfg).catalog.load_table(f"{cfg.storage.namespace}.trades")
    assert partition_columns(handle) == TRADES.partition_by
    assert [f.name for f in handle.spec().fields] == ["event_date_part", "symbol_part"]


@pytest.mark.parametrize("kind", ["iceberg-spark", "delta"])
def test_maintenance_compacts_and_keeps_the_batch_markers(
    spark: SparkSession, tmp_path: Path, kind: str
) -> None:
    cfg = lite(tmp_path, retain_snapshots=2, maintenance_every_commits=0)

    def make() -> SparkIcebergSink | DeltaSink:
        return SparkIcebergSink(cfg, spark) if kind == "iceberg-spark" else DeltaSink(cfg, spark)

    sink = make()
    sink.open([TRADES])
    batches = [run_engine(small_config(), [trade(i, 1.0, 1.0, T0 + i)])[0].tables["trades"] for i in range(6)]
    for batch_id, data in enumerate(batches):
        sink.write(batch_id, "query:a", {"trades": data})
    before = rows(sink, "trades")
    done = sink.maintain("trades")
    assert done["files_rewritten"] >= len(batches) and done["files_added"] < done["files_rewritten"]
    if isinstance(sink, SparkIcebergSink):
        snapshots = sink.spark.sql(f"SELECT * FROM {sink.ident('trades')}.snapshots").count()
        assert snapshots == 2  # the six appends' snapshots, and their summaries, are gone but two
    again = make()  # a restart after maintenance: the markers still say batch 5 is in
    again.open([TRADES])
    assert again.write(3, "query:a", {"trades": batches[3]}) == {"trades": False}
    assert again.write(5, "query:a", {"trades": batches[5]}) == {"trades": False}
    assert rows(again, "trades") == before
    if kind == "iceberg-spark":
        reader = IcebergSink(cfg)
        reader.open([TRADES])
        assert reader.write(5, "query:a", {"trades": batches[5]}) == {"trades": False}


def test_maintenance_runs_after_the_configured_number_of_commits(spark: SparkSession, tmp_path: Path) -> None:
    sink = SparkIcebergSink(lite(tmp_path, maintenance_every_commits=3, retain_snapshots=1), spark)
    sink.open([TRADES])
    for batch_id in range(4):
        data = run_engine(small_config(), [trade(batch_id, 100.0, 1.0, T0 + batch_id)])[0].tables["trades"]
        sink.write(batch_id, "query:a", {"trades": data})
    # the third commit was followed by maintenance (one snapshot kept), the fourth added one
    assert sink.spark.sql(f"SELECT * FROM {sink.ident('trades')}.snapshots").count() == 2
    assert len(rows(sink, "trades")) == 4


def test_an_arrow_table_with_empty_chunks_reaches_spark_whole(spark: SparkSession) -> None:
    # the router's grouped commit concatenates batches whose tables start with an empty chunk; PySpark
    # alone keeps only the rows before the first empty one
    first, second = pa.table({"a": list(range(5))}), pa.table({"a": list(range(7))})
    empty = first.schema.empty_table()
    data = pa.concat_tables([pa.concat_tables([empty, first]), pa.concat_tables([empty, second])])
    assert arrow_frame(spark, data).toArrow().column("a").to_pylist() == [*range(5), *range(7)]
    assert arrow_frame(spark, pa.concat_tables([empty, empty])).count() == 0
