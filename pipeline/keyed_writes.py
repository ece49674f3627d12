"""State-store mode with Spark's table writers: the executors write bronze and per-instrument tables.

In ``state_store`` mode with ``storage.writer: spark`` or ``storage.format: delta`` the per-key output
of ``pipeline.keyed`` (one ``OUTPUT_DDL`` row per key and table, the rows as Arrow IPC) never comes to
the driver whole. Per trigger, over that output persisted once (so no action runs the keyed step
again):

1. **one collect** (``KeyedWrites.collect``, the ``narrow`` step on the executors): every row's table
   name and row count, and the payload only of the *driver's tables*: ``alerts`` (DynamoDB first, then
   its table), the asset and global stage's internal tables (``pipeline.cross``: feed rows, clocks) and
   those modules' own metric tables. With ``stamps``, each bronze payload becomes its rows' three time
   stamps (``STAMPS_SCHEMA``, 24 bytes per event), which the harness's latency recorder needs; the
   production job asks for none.
2. the router writes the alerts to the alert sinks and spools the driver's tables, as in every mode;
3. **one append per non-empty executor table** (``KeyedWrites.write``): ``table_rows`` turns that
   table's payloads into its stored rows on the executors, and Spark's writer appends them (executors
   write the files, the driver commits) with the batch marker. A table that already holds the batch (Spark
   re-ran it after a crash: the state store gives the same rows) is skipped, so each batch is written once.

Each action's wall time is returned for ``BatchTiming.actions_us``: extra actions are measured, not
assumed free.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Final

import pyarrow as pa

from pipeline.arrow_ipc import from_ipc, to_ipc
from pipeline.keyed import OUTPUT_DDL, RECORDS
from pipeline.sinks.base import FrameTableSink
from pipeline.tables import BRONZE, QUARANTINE, TableDef

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

STAMP_COLUMNS: Final = ("ts_event", "ts_sent", "ts_ingest")
STAMPS_SCHEMA: Final = pa.schema([(c, pa.int64()) for c in STAMP_COLUMNS])
"""The events' time stamps a latency measurement reads (absent columns are null)."""
EVENT_TABLES: Final = frozenset({*(t.name for t in BRONZE.values()), QUARANTINE.name})
"""The tables that hold one row per record: what ``stamps`` narrows to its time stamps."""


def stamps_of(table: pa.Table) -> pa.Table:
    """``table``'s ``STAMP_COLUMNS`` as ``STAMPS_SCHEMA`` rows (a column it lacks is null)."""
    return pa.table(
        [table.column(c).cast(pa.int64()) if c in table.column_names else pa.nulls(table.num_rows, pa.int64())
         for c in STAMP_COLUMNS],
        schema=STAMPS_SCHEMA,
    )


def narrow(
    batches: Iterable[pa.RecordBatch], keep: Collection[str], stamped: Collection[str]
) -> Iterator[pa.RecordBatch]:
    """``OUTPUT_DDL`` batches with the payload kept for tables in ``keep``, narrowed to its time stamps
    for tables in ``stamped``, and null for every other table (counts stay)."""
    for batch in batches:
        names = batch.column("table").to_pylist()
        blobs = batch.column("payload")
        payloads: list[bytes | None] = []
        for i, name in enumerate(names):
            if name in keep:
                payloads.append(blobs[i].as_py())
            elif name in stamped:
                payloads.append(to_ipc(stamps_of(from_ipc(blobs[i].as_py()))))
            else:
                payloads.append(None)
        index = batch.schema.get_field_index("payload")
        yield batch.set_column(index, batch.schema.field(index), pa.array(payloads, pa.binary()))


def table_rows(batches: Iterable[pa.RecordBatch], table: TableDef) -> Iterator[pa.RecordBatch]:
    """The payloads of one table's ``OUTPUT_DDL`` rows as rows of its stored schema (partition columns
    derived), for Spark's writer."""
    for batch in batches:
        for blob in batch.column("payload").to_pylist():
            if blob is None:
                continue
            stored = table.with_partition_columns(from_ipc(blob).cast(table.schema))
            yield from stored.to_batches()


class KeyedWrites:
    """One trigger's per-key output: the narrow collect for the driver, one executor-side append per table.

    ``sinks``: every table sink of the pipeline (each writes from DataFrames). ``tables``: every table
    the pipeline writes. ``driver_tables``: the tables (and internal tables) the driver needs whole.
    ``stamps``: bring the bronze rows' time stamps along (the harness's latency recorder).
    """

    def __init__(
        self,
        sinks: Sequence[FrameTableSink],
        tables: Sequence[TableDef],
        driver_tables: Collection[str],
        stamps: bool = False,
    ) -> None:
        self.sinks = list(sinks)
        self.driver_tables = frozenset(driver_tables)
        self.executor_tables = {t.name: t for t in tables if t.name not in self.driver_tables}
        self.stamped = EVENT_TABLES if stamps else frozenset()

    def collect(self, output: DataFrame) -> pa.Table:
        """The ``OUTPUT_DDL`` rows the driver needs (``narrow``), in one action."""
        return output.mapInArrow(
            partial(narrow, keep=self.driver_tables, stamped=self.stamped), OUTPUT_DDL
        ).toArrow()

    def write(self, output: DataFrame, collected: pa.Table, batch_id: int, writer: str) -> dict[str, int]:
        """Append each executor table that has rows in this batch (``collected``'s counts) from ``output``
        on the executors, unless a sink holds the batch already; returns ``write:<table>`` -> wall µs of
        each append that ran."""
        from pyspark.sql.functions import col
        from pyspark.sql.pandas.types import from_arrow_schema

        counts = collected.group_by("table").aggregate([("rows", "sum")])
        present = {
            name for name, rows in zip(counts.column("table").to_pylist(),
                                       counts.column("rows_sum").to_pylist(), strict=True)
            if name != RECORDS and name in self.executor_tables and rows
        }
        spent: dict[str, int] = {}
        for name in sorted(present):
            table = self.executor_tables[name]
            rows = output.filter(col("table") == name).select("payload").mapInArrow(
                partial(table_rows, table=table), from_arrow_schema(table.stored_schema)
            )
            for sink in self.sinks:
                started = time.perf_counter_ns()
                if sink.write_frame(batch_id, writer, name, rows):
                    took = (time.perf_counter_ns() - started) // 1_000
                    spent[f"write:{name}"] = spent.get(f"write:{name}", 0) + took
        return spent

