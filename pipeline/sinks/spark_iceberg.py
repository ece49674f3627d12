"""Iceberg tables written by Spark's Iceberg runtime, as on EMR (catalog: ``pipeline.sinks.spark_catalog``).

The same tables and the same exactly-once bookkeeping as ``pipeline.sinks.iceberg``: each append carries
``coattail.writer`` and ``coattail.batch-id`` as snapshot properties (Iceberg's ``snapshot-property.*``
write options: one atomic commit with the data). Tables are created with the layout pyiceberg gives them
(identity partition fields named ``<column>_part``), so whichever side creates a table, both read and
write it alike. Markers a maintenance step moved into table properties, before expiring the snapshots
that carried them (``pipeline.jobs.maintenance``), count as commits too. Besides the driver's Arrow
tables it appends a DataFrame's rows where they are (``write_frame``: the executors write the files, the
driver commits), which state-store mode uses for the bronze and per-instrument tables
(``pipeline.keyed_writes``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import pyarrow as pa

from core.errors import SinkError
from pipeline.config import Config
from pipeline.sinks.base import BATCH_PROPERTY, FrameTableSink
from pipeline.sinks.iceberg import CATALOG_NAME, MARKER_PREFIX, PART_SUFFIX, markers
from pipeline.sinks.spark_catalog import catalog_session, set_catalog
from pipeline.sinks.spark_io import append_error, arrow_frame, java_message, quoted
from pipeline.tables import TableDef

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

class SparkIcebergSink(FrameTableSink):
    """One Iceberg table per pipeline table in ``config.storage.namespace``, committed by Spark."""

    name: ClassVar[str] = "iceberg-spark"
    maintain_every_default: ClassVar[int] = 100

    def __init__(self, config: Config, spark: SparkSession) -> None:
        super().__init__(config.storage.maintenance_every_commits)
        self.config = config
        self.namespace = config.storage.namespace
        self.spark = catalog_session(spark, config.runtime, config.storage.warehouse_bucket)

    def ident(self, table: str) -> str:
        """The table's identifier in Spark SQL."""
        return quoted(CATALOG_NAME, self.namespace, table)

    def where(self, table: str) -> str:
        """``Iceberg table <namespace>.<table> (Spark)``."""
        return f"Iceberg table {self.namespace}.{table} (Spark)"

    def _sql(self, statement: str, what: str) -> DataFrame:
        try:
            return self.spark.sql(statement)
        except Exception as e:  # py4j / Spark analysis errors: translated at the boundary
            raise SinkError(f"{what} failed in Spark's Iceberg catalog: {java_message(e)}") from e

    def _create(self, table: TableDef) -> None:
        from pyspark.sql.pandas.types import from_arrow_schema

        self._sql(f"CREATE NAMESPACE IF NOT EXISTS {quoted(CATALOG_NAME, self.namespace)}",
                  f"creating namespace {self.namespace}")
        ident = self.ident(table.name)
        if self.spark.catalog.tableExists(f"{CATALOG_NAME}.{self.namespace}.{table.name}"):
            return
        columns = ", ".join(
            f"{quoted(f.name)} {f.dataType.simpleString()}{'' if f.nullable else ' NOT NULL'}"
            for f in from_arrow_schema(table.stored_schema).fields
        )
        self._sql(f"CREATE TABLE IF NOT EXISTS {ident} ({columns}) USING iceberg",
                  f"creating {self.where(table.name)}")
        fields = self._sql(f"SELECT * FROM {ident}.partitions LIMIT 0", "reading the partition spec")
        if table.partition_by and "partition" not in fields.columns:
            for column in table.partition_by:
                self._sql(f"ALTER TABLE {ident} ADD PARTITION FIELD {quoted(column)} AS "
                          f"{quoted(column + PART_SUFFIX)}", f"partitioning {self.where(table.name)}")

    def _markers(self, table: str) -> dict[str, int]:
        ident = self.ident(table)
        rows = self._sql(f"SELECT summary FROM {ident}.snapshots", f"reading {self.where(table)}'s snapshots")
        props = self._sql(f"SHOW TBLPROPERTIES {ident}", f"reading {self.where(table)}'s properties")
        return markers((dict(r["summary"] or {}) for r in rows.collect()),
                       {r["key"]: r["value"] for r in props.collect()})

    def _append(self, table: str, data: pa.Table, properties: dict[str, str]) -> None:
        stored = self.definitions[table].with_partition_columns(data)
        self._append_frame(table, arrow_frame(self.spark, stored), properties)

    def _append_frame(self, table: str, frame: DataFrame, properties: dict[str, str]) -> None:
        # a frame is written through its own session: a streaming batch's frame has the query's
        set_catalog(frame.sparkSession, self.config.runtime, self.config.storage.warehouse_bucket)
        writer = frame.writeTo(self.ident(table))
        for key, value in properties.items():
            writer = writer.option(f"snapshot-property.{key}", value)
        try:
            writer.append()
        except Exception as e:
            raise append_error(self.where(table), properties[BATCH_PROPERTY], e) from e

    def maintain(self, table: str) -> dict[str, int]:
        """Keep every writer's last batch as a table property, compact small files, then expire all but
        the newest ``storage.retain_snapshots`` snapshots (and the files only they referenced)."""
        # the procedures parse the name themselves: fully qualified, since the namespace may share the
        # catalog's name
        ident, name = self.ident(table), f"{CATALOG_NAME}.{self.namespace}.{table}"
        last = self._markers(table)
        if last:
            props = ", ".join(f"'{MARKER_PREFIX}{w}' = '{b}'" for w, b in sorted(last.items()))
            self._sql(f"ALTER TABLE {ident} SET TBLPROPERTIES ({props})", f"marking {self.where(table)}")
        procedures = f"{quoted(CATALOG_NAME)}.system"
        rewritten = self._sql(
            f"CALL {procedures}.rewrite_data_files(table => '{name}', "
            "options => map('min-input-files', '2'))", f"compacting {self.where(table)}").first()
        expired = self._sql(
            f"CALL {procedures}.expire_snapshots(table => '{name}', older_than => current_timestamp(), "
            f"retain_last => {self.config.storage.retain_snapshots})",
            f"expiring {self.where(table)}").first()
        return {
            "files_rewritten": int(rewritten["rewritten_data_files_count"]) if rewritten else 0,
            "files_added": int(rewritten["added_data_files_count"]) if rewritten else 0,
            "data_files_deleted": int(expired["deleted_data_files_count"]) if expired else 0,
        }

    def read(self, table: str) -> pa.Table:
        """The whole table (for tests, validation and small runs)."""
        return self.spark.table(self.ident(table)).toArrow()

