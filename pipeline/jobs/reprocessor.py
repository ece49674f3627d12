"""Reprocessor: re-run detectors over a time range of the bronze tables into a named output.

The fast way to replay a historical day without Kinesis. Every key ``(exchange, symbol)`` goes through
``run_key``: its rows are put in arrival order (shard_id, sequence_number as a number, sub_sequence)
and ``Engine.process`` runs once over them with a fresh state, i.e. the sequencer and the chosen
detectors, exactly the code of a streaming micro-batch, over the whole key at once (so the result is
the streaming result for any micro-batch split). Keys are independent, so Spark runs them in parallel.

Iceberg bronze: the data files come from pyiceberg's scan plan (row filter on ``ts_event``). Delta
bronze (``storage.format: delta``): Delta's Spark reader, by shuffle. Two ways to get each key's rows to
one task:

- **by partition** (default, local warehouse): bronze tables are partitioned by
  ``(event_date, symbol)``, so the plan's files are grouped by their ``symbol`` partition; one Spark
  task per symbol reads its files with ``pyarrow.parquet`` (filter pushed down) and runs every key of
  the symbol. No shuffle and no JVM row conversion: the cheapest path.
- **by shuffle** (``shuffle=True``, or files on S3, or files with delete files): Spark SQL reads the
  files (``spark.read.parquet`` on the paths, or pyiceberg's Arrow scan when they are remote or have
  deletes), groups by key and calls ``run_key`` in ``applyInArrow``.

Outputs come back as Arrow IPC payloads and are written to ``<table>_<name>`` Iceberg tables
(``alerts_<name>``, ``spread_metrics_<name>``, ``dq_metrics_<name>``; the live tables' definitions
under those names, unpartitioned: a run's output is read whole), never the live tables and never
DynamoDB. Every run replaces the whole output: each table any module could have written under the name
is dropped, and each table the chosen modules declare is created, empty when the run produced no rows.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.errors import CoattailError, ConfigError, PipelineError
from core.events import TapeKind
from pipeline.arrow_ipc import from_ipc, to_ipc
from pipeline.config import Config
from pipeline.cross import INTERNAL_SCHEMAS, INTERNAL_TABLES
from pipeline.detectors.registry import ModuleRegistry
from pipeline.engine import BatchResult, Engine, EngineState, arrival_order
from pipeline.parse import PARSED_SCHEMA
from pipeline.sinks.delta import DeltaSink
from pipeline.sinks.iceberg import IcebergSink
from pipeline.tables import ALERTS, BRONZE, TableDef, detector_tables, registered_metric_tables

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_NAME: Final = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
_RESULT_DDL: Final = "table string, payload binary"
_JOB_CONF: Final = ("spark.sql.adaptive.coalescePartitions.enabled", "spark.sql.shuffle.partitions")
_STATS: Final = "__stats__"
"""Pseudo table of a key's result rows: its payload is JSON ``{"key", "events", "cpu_s"}``."""


@dataclass
class ReprocessResult:
    """What a reprocessing run read and wrote."""

    events: int
    key_cpu_s: dict[str, float] = field(default_factory=dict)
    """CPU seconds of each key's step (``exchange:symbol``): the largest bounds the wall time."""
    tables: dict[str, pa.Table] = field(default_factory=dict)
    """Output tables by their base name (``alerts``, ``spread_metrics``, ``dq_metrics``, ...)."""
    written: dict[str, str] = field(default_factory=dict)
    """Base name -> the Iceberg table it went to."""


def output_table(table: str, name: str) -> str:
    """``alerts`` + ``whale_v2`` -> ``alerts_whale_v2``."""
    return f"{table}_{name}"


def output_tables(modules: Sequence[str]) -> tuple[TableDef, ...]:
    """The output tables of a run with ``modules``, under their base names: alerts and metric tables."""
    registry = ModuleRegistry()
    return (ALERTS, *detector_tables(registry.get(module_id) for module_id in modules))


def check_name(name: str) -> None:
    """An output name must be a short lower-case identifier (it becomes part of table names)."""
    if not _NAME.match(name):
        raise ConfigError(
            f"output name {name!r} is not valid: use 1-41 lower-case letters, digits or '_', starting "
            "with a letter (it names the tables alerts_<name>, ...)"
        )


def check_request(modules: Sequence[str], start_us: int, end_us: int, name: str) -> None:
    """Refuse a bad request before any work: output name, module ids, time range."""
    check_name(name)
    if not modules:
        raise ConfigError("no detectors chosen: pass --detectors MOD-001,MOD-002,...")
    registry = ModuleRegistry()
    for module_id in modules:
        registry.get(module_id)  # an unknown or unloadable module fails here
    if end_us <= start_us:
        raise ConfigError(f"empty time range: --from {start_us} is not before --to {end_us}")


def run_key(table: pa.Table, config: Config, modules: Sequence[str]) -> pa.Table:
    """The per-key batch step: one key's events (every kind, ``PARSED_SCHEMA``, any order) -> its
    output tables as Arrow IPC payloads, plus one ``_STATS`` row."""
    cpu = time.process_time()
    events = table.take(arrival_order(table)).select(PARSED_SCHEMA.names)
    cfg = config.model_copy(update={"modules": tuple(modules)})
    engine = Engine(cfg, ModuleRegistry().build(cfg))
    # the instrument stage only: the asset and global stage runs once over every key's output (reprocess)
    result = engine.run(events, 0, EngineState(), bronze=False)  # bronze is where the rows came from
    outputs = {t.name for t in output_tables(modules)} | set(INTERNAL_TABLES)
    names, payloads = [], []
    for name, out in result.tables.items():
        if name not in outputs or out.num_rows == 0:
            continue
        names.append(name)
        payloads.append(to_ipc(out))
    key = f"{events.column('exchange')[0]}:{events.column('symbol')[0]}" if events.num_rows else ""
    stats = {"key": key, "events": events.num_rows, "cpu_s": round(time.process_time() - cpu, 3)}
    names.append(_STATS)
    payloads.append(json.dumps(stats).encode())
    return pa.table({"table": pa.array(names, pa.string()), "payload": pa.array(payloads, pa.binary())})


def bronze_frame(
    spark: SparkSession, sink: IcebergSink, kind: TapeKind, start_us: int, end_us: int
) -> DataFrame:
    """One Iceberg bronze table's rows in ``[start_us, end_us)`` as a Spark DataFrame of ``PARSED_SCHEMA``."""
    handle = sink.catalog.load_table(f"{sink.namespace}.{BRONZE[kind].name}")
    scan = handle.scan(row_filter=f"ts_event >= {int(start_us)} AND ts_event < {int(end_us)}")
    tasks = list(scan.plan_files())
    paths = [t.file.file_path for t in tasks]
    if paths and all(p.startswith("file:") for p in paths) and not any(t.delete_files for t in tasks):
        frame = spark.read.parquet(*paths)
    else:
        arrow = scan.to_arrow()
        if arrow.num_rows == 0:
            return spark.createDataFrame([], _spark_schema())
        frame = spark.createDataFrame(arrow.to_pandas())
    return _parsed(frame, kind, start_us, end_us)


def delta_bronze_frame(delta: DeltaSink, kind: TapeKind, start_us: int, end_us: int) -> DataFrame:
    """One Delta bronze table's rows in ``[start_us, end_us)`` as a DataFrame of ``PARSED_SCHEMA``, read
    by Delta's Spark reader on ``delta.spark`` (the session that reaches the table's storage); a table
    the run never created reads as empty."""
    path = delta.path(BRONZE[kind].name)
    if not delta.exists(BRONZE[kind].name):
        return delta.spark.createDataFrame([], _spark_schema())
    return _parsed(delta.spark.read.format("delta").load(path), kind, start_us, end_us)


def _parsed(frame: DataFrame, kind: TapeKind, start_us: int, end_us: int) -> DataFrame:
    """``frame``'s rows in ``[start_us, end_us)`` with ``PARSED_SCHEMA``'s columns (absent ones null)."""
    from pyspark.sql import functions as sf

    frame = frame.where((sf.col("ts_event") >= start_us) & (sf.col("ts_event") < end_us))
    columns = []
    for f in PARSED_SCHEMA:
        if f.name == "kind":
            columns.append(sf.lit(kind).alias("kind"))
        elif f.name in frame.columns:
            columns.append(sf.col(f.name))
        else:
            columns.append(sf.lit(None).cast(_spark_type(f.type)).alias(f.name))
    return frame.select(*columns)


def reprocess(
    spark: SparkSession,
    config: Config,
    *,
    modules: Sequence[str],
    start_us: int,
    end_us: int,
    name: str,
    sink: IcebergSink | None = None,
    write: bool = True,
    shuffle: bool = False,
) -> ReprocessResult:
    """Re-run ``modules`` over bronze rows in ``[start_us, end_us)``; write ``<table>_<name>`` tables.

    ``shuffle`` forces the Spark SQL path (read, shuffle by key, ``applyInArrow``) even when the
    partition-aligned one applies; both give the same result. With ``storage.format: delta`` the bronze
    rows come from the Delta tables (Delta's Spark reader, then the Spark SQL path); the outputs are
    Iceberg tables in either format.
    """
    check_request(modules, start_us, end_us, name)
    sink = sink if sink is not None else IcebergSink(config)
    delta = config.storage.format == "delta"
    groups = None if shuffle or delta else plan_symbol_groups(sink, start_us, end_us)
    try:
        if groups is not None:
            rows = _run_by_partition(spark, groups, config, tuple(modules), start_us, end_us)
        elif delta:
            bronze = DeltaSink(config, spark)
            rows = _run_by_shuffle(
                bronze.spark, lambda kind: delta_bronze_frame(bronze, kind, start_us, end_us), config,
                tuple(modules))
        else:
            rows = _run_by_shuffle(spark, lambda kind: bronze_frame(spark, sink, kind, start_us, end_us),
                                   config, tuple(modules))
    except CoattailError:
        raise
    except Exception as e:  # py4j and Python worker errors: translate at the boundary
        raise PipelineError(f"reprocessing {name} failed in Spark: {e}") from e
    stats = [json.loads(r["payload"]) for r in rows if r["table"] == _STATS]
    # run_key leaves out empty tables: every declared output is still in the result (and written)
    empty = {table.name: table.schema.empty_table() for table in output_tables(modules)}
    internal = {name: schema.empty_table() for name, schema in INTERNAL_SCHEMAS.items()}
    produced = _gather([r for r in rows if r["table"] != _STATS])
    batch = BatchResult(0, 0, 0, 0, {**empty, **internal, **produced})
    cfg = config.model_copy(update={"modules": tuple(modules)})
    Engine(cfg, ModuleRegistry().build(cfg)).run_cross(batch, EngineState())
    tables = batch.tables
    result = ReprocessResult(
        events=sum(s["events"] for s in stats),
        tables=tables,
        key_cpu_s={s["key"]: s["cpu_s"] for s in stats},
    )
    if write:
        result.written = _write(sink, name, tables, modules)
    return result


@dataclass(frozen=True)
class SymbolGroup:
    """The local data files holding one symbol's bronze rows (``None``: every symbol), by kind."""

    symbol: str | None
    files: dict[str, list[str]]


def plan_symbol_groups(sink: IcebergSink, start_us: int, end_us: int) -> list[SymbolGroup] | None:
    """Group the scan plan's data files by their ``symbol`` partition; ``None`` when that cannot serve.

    It serves when every file is local and has no delete files. Bronze tables are partitioned by
    ``(event_date, symbol)``, so one symbol's rows (all its keys) sit in its own files and each group
    can be read and processed by one task, with no shuffle at all.
    """
    groups: dict[str | None, dict[str, list[str]]] = {}
    for kind, table in BRONZE.items():
        handle = sink.catalog.load_table(f"{sink.namespace}.{table.name}")
        symbol_id = handle.schema().find_field("symbol").field_id
        spec = handle.spec()
        position = next((i for i, f in enumerate(spec.fields) if f.source_id == symbol_id), None)
        scan = handle.scan(row_filter=f"ts_event >= {int(start_us)} AND ts_event < {int(end_us)}")
        for task in scan.plan_files():
            path = task.file.file_path
            if task.delete_files or not path.startswith("file:"):
                return None
            symbol = None if position is None else str(task.file.partition[position])
            groups.setdefault(symbol, {}).setdefault(kind, []).append(path.removeprefix("file://"))
    if None in groups and len(groups) > 1:
        return [SymbolGroup(None, _merge_files(groups.values()))]
    return [SymbolGroup(symbol, files) for symbol, files in sorted(groups.items(), key=lambda kv: str(kv[0]))]


def read_group(group: SymbolGroup, start_us: int, end_us: int) -> pa.Table:
    """A group's bronze rows in ``[start_us, end_us)`` as one ``PARSED_SCHEMA`` table (every kind)."""
    parts = []
    for kind, paths in group.files.items():
        filters: list[tuple[str, str, Any]] = [("ts_event", ">=", start_us), ("ts_event", "<", end_us)]
        if group.symbol is not None:
            filters.append(("symbol", "=", group.symbol))
        data = pq.read_table(paths, filters=filters, partitioning=None)
        columns = {
            f.name: data.column(f.name).cast(f.type)
            if f.name in data.column_names
            else pa.nulls(data.num_rows, f.type)
            for f in PARSED_SCHEMA
        }
        # one repeated scalar: a Python list of a string per row cost seconds on a day's rows
        columns["kind"] = pa.repeat(pa.scalar(kind, pa.string()), data.num_rows)
        parts.append(pa.table(columns, schema=PARSED_SCHEMA))
    return pa.concat_tables(parts) if parts else PARSED_SCHEMA.empty_table()


def run_group(
    group: SymbolGroup, config: Config, modules: Sequence[str], start_us: int, end_us: int
) -> list[tuple[str, bytes]]:
    """One task: read a group's files, then ``run_key`` for each of its keys."""
    table = read_group(group, start_us, end_us)
    out: list[tuple[str, bytes]] = []
    keys = table.group_by(["exchange", "symbol"]).aggregate([]).to_pylist()
    for key in sorted(keys, key=lambda k: (k["exchange"], k["symbol"])):
        # a symbol's group mostly holds one key: then the mask and the filtered copy of a day's rows
        # (a fifth of a reprocess's samples in a py-spy profile) are skipped
        rows = table if len(keys) == 1 else table.filter(pc.and_(
            pc.equal(table.column("exchange"), key["exchange"]),
            pc.equal(table.column("symbol"), key["symbol"]),
        ))  # fmt: skip
        result = run_key(rows, config, modules)
        out += zip(result.column("table").to_pylist(), result.column("payload").to_pylist(), strict=True)
    return out


def _run_by_partition(
    spark: SparkSession,
    groups: list[SymbolGroup],
    config: Config,
    modules: tuple[str, ...],
    start_us: int,
    end_us: int,
) -> list[dict[str, Any]]:
    """One Spark task per symbol group, reading its Parquet files with Arrow (no shuffle).

    Tasks start largest group first (by bytes on disk): one key runs sequentially, so a day's busiest
    symbol started last would leave a core idle while it runs on. Results keep the groups' order.
    """
    if not groups:
        return []

    def task(item: tuple[int, SymbolGroup]) -> list[tuple[int, str, bytes]]:
        index, group = item
        return [(index, t, p) for t, p in run_group(group, config, modules, start_us, end_us)]

    largest_first = sorted(enumerate(groups), key=lambda item: -_group_bytes(item[1]))
    triples = spark.sparkContext.parallelize(largest_first, len(groups)).flatMap(task).collect()
    triples.sort(key=lambda triple: triple[0])  # stable: each group's own order stays
    return [{"table": t, "payload": p} for _, t, p in triples]


def _group_bytes(group: SymbolGroup) -> int:
    return sum(os.path.getsize(path) for paths in group.files.values() for path in paths)


def _run_by_shuffle(
    spark: SparkSession,
    bronze: Callable[[TapeKind], DataFrame],
    config: Config,
    modules: tuple[str, ...],
) -> list[Any]:
    """Spark SQL on ``spark``: read the bronze tables (``bronze`` of each kind), group by key (a
    shuffle), ``run_key`` per key in ``applyInArrow``."""
    events = bronze("trade")
    for kind in ("quote", "transfer"):
        events = events.unionByName(bronze(kind))

    def per_key(table: pa.Table) -> pa.Table:
        return run_key(table, config, modules)

    keys = events.select("exchange", "symbol").distinct().count()
    previous = {k: spark.conf.get(k) for k in _JOB_CONF}
    # one task per key (as far as hashing allows), never merged back by adaptive execution: the keys
    # are few and large, and each must get its own core
    spark.conf.set("spark.sql.adaptive.coalescePartitions.enabled", "false")
    spark.conf.set("spark.sql.shuffle.partitions", str(max(4 * keys, 1)))
    try:
        rows: list[Any] = events.groupBy("exchange", "symbol").applyInArrow(per_key, _RESULT_DDL).collect()
    finally:
        for k, v in previous.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)
    return rows


def _merge_files(groups: Any) -> dict[str, list[str]]:
    merged: dict[str, list[str]] = {}
    for files in groups:
        for kind, paths in files.items():
            merged.setdefault(kind, []).extend(paths)
    return merged


def _gather(rows: list[Any]) -> dict[str, pa.Table]:
    parts: dict[str, list[pa.Table]] = {}
    for row in rows:
        parts.setdefault(row["table"], []).append(from_ipc(row["payload"]))
    return {name: pa.concat_tables(ts) for name, ts in parts.items()}


def _write(
    sink: IcebergSink, name: str, tables: dict[str, pa.Table], modules: Sequence[str]
) -> dict[str, str]:
    """Replace the output: drop every table a previous run of this name may have left (also those of
    modules not chosen now), create each of ``tables`` (empty ones too), append the rows once."""
    from pyiceberg.exceptions import NoSuchTableError

    targets = {table: output_table(table, name) for table in tables}
    for base in sorted(_output_bases() | set(tables)):
        with suppress(NoSuchTableError):
            sink.catalog.drop_table(f"{sink.namespace}.{output_table(base, name)}")
    fresh = IcebergSink(sink.config, sink.catalog)  # its exactly-once bookkeeping must not remember them
    # an output keeps its table's columns and key, unpartitioned: one run's rows, read whole
    fresh.open(replace(t, name=targets[t.name], partition_by=()) for t in output_tables(modules))
    fresh.write(0, f"reprocess:{name}", {targets[t]: data for t, data in tables.items()})
    return {t: f"{sink.namespace}.{target}" for t, target in targets.items()}


def _output_bases() -> set[str]:
    """The base name of every output table a registered module can write."""
    return {ALERTS.name} | {t.name for t in registered_metric_tables()}


def _spark_type(t: pa.DataType) -> str:
    if pa.types.is_int64(t):
        return "bigint"
    if pa.types.is_int32(t):
        return "int"
    if pa.types.is_floating(t):
        return "double"
    return "string"


def _spark_schema() -> str:
    return ", ".join(f"{f.name} {_spark_type(f.type)}" for f in PARSED_SCHEMA)
