"""Delta tables written by delta-spark (``storage.format: delta``): one table per pipeline table under
``delta_root(config)/<namespace>/<table>``: a local directory in ``lite``, ``s3://<warehouse bucket>/delta``
otherwise (EMRFS on EMR; S3A at the emulator in ``mirror``, ``spark_catalog.delta_storage_properties``).

Exactly once with Delta's idempotent writes: every append carries ``txnAppId`` (the writer) and
``txnVersion`` (the highest batch id in it); Delta records the pair in its log, in the same commit as the
data, and skips a write whose version it already holds. The log's transaction identifiers are also what
``_last_committed`` reads (Delta keeps them through OPTIMIZE, VACUUM and log checkpoints), so the base's
regrouping of retried batches never appends one twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final

import pyarrow as pa

from core.errors import SinkError
from pipeline.aws import check_endpoint
from pipeline.config import Config
from pipeline.sinks.base import BATCH_PROPERTY, WRITER_PROPERTY, FrameTableSink
from pipeline.sinks.spark_catalog import delta_storage_properties
from pipeline.sinks.spark_io import append_error, arrow_frame, java_message
from pipeline.tables import TableDef

DELTA_CATALOG: Final = "org.apache.spark.sql.delta.catalog.DeltaCatalog"

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def delta_root(config: Config) -> str:
    """Where ``config``'s Delta tables live: ``<state_dir>/delta`` in ``lite``, else the warehouse
    bucket's ``delta/`` prefix."""
    if config.runtime.profile == "lite":
        return str(Path(config.runtime.state_dir).resolve() / "delta")
    return f"s3://{config.storage.warehouse_bucket}/delta"


class DeltaSink(FrameTableSink):
    """One Delta table per pipeline table, committed by Spark with idempotent writes; in ``state_store``
    mode the executors write the per-key tables' files (``pipeline.keyed_writes``)."""

    name: ClassVar[str] = "delta"
    maintain_every_default: ClassVar[int] = 100

    def __init__(self, config: Config, spark: SparkSession) -> None:
        super().__init__(config.storage.maintenance_every_commits)
        self.config = config
        # Delta's commands want its catalog as the session catalog: set on a session of its own, so
        # the pipeline's session keeps Spark's
        self.spark = spark.newSession()
        self.spark.conf.set("spark.sql.catalog.spark_catalog", DELTA_CATALOG)
        if config.runtime.profile != "lite":
            check_endpoint(config.runtime, "s3")  # the options are plain data; talking to S3 is guarded
        # a session's options reach the Hadoop configuration its reads and writes open files with
        for key, value in delta_storage_properties(config.runtime).items():
            self.spark.conf.set(key, value)
        self.root = delta_root(config)
        self.namespace = config.storage.namespace

    def path(self, table: str) -> str:
        """The directory of ``table``."""
        return f"{self.root}/{self.namespace}/{table}"

    def where(self, table: str) -> str:
        """``Delta table <path>``."""
        return f"Delta table {self.path(table)}"

    def exists(self, table: str) -> bool:
        """Whether ``table`` has been created (its directory holds a Delta log)."""
        jvm: Any = self.spark.sparkContext._jvm
        try:
            delta_table = jvm.io.delta.tables.DeltaTable
            return bool(delta_table.isDeltaTable(self.spark._jsparkSession, self.path(table)))
        except Exception as e:
            raise SinkError(f"cannot read {self.where(table)}: {java_message(e)}") from e

    def _create(self, table: TableDef) -> None:
        empty = arrow_frame(self.spark, table.stored_schema.empty_table())
        try:
            # an empty append creates the table (schema and partitioning) and is a no-op once it exists
            empty.write.format("delta").mode("append").partitionBy(*table.partition_by).save(
                self.path(table.name))
        except Exception as e:
            raise SinkError(f"cannot create {self.where(table.name)}: {java_message(e)}") from e

    def _markers(self, table: str) -> dict[str, int]:
        """``txnAppId -> txnVersion`` recorded in ``table``'s log (its latest snapshot)."""
        jvm: Any = self.spark.sparkContext._jvm
        log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(self.spark._jsparkSession, self.path(table))
        none = jvm.scala.Option.empty()
        snapshot = log.update(False, none, none)
        txns = jvm.scala.jdk.javaapi.CollectionConverters.asJava(snapshot.transactions())
        return {str(k): int(v) for k, v in dict(txns).items()}

    def _append(self, table: str, data: pa.Table, properties: dict[str, str]) -> None:
        stored = self.definitions[table].with_partition_columns(data)
        self._append_frame(table, arrow_frame(self.spark, stored), properties)

    def _append_frame(self, table: str, frame: DataFrame, properties: dict[str, str]) -> None:
        # a streaming batch's frame writes through the query's session: it needs the S3 options too
        for key, value in delta_storage_properties(self.config.runtime).items():
            frame.sparkSession.conf.set(key, value)
        try:
            (frame.write.format("delta").mode("append")
             .option("txnAppId", properties[WRITER_PROPERTY])
             .option("txnVersion", properties[BATCH_PROPERTY])
             .save(self.path(table)))
        except Exception as e:
            raise append_error(self.where(table), properties[BATCH_PROPERTY], e) from e

    def maintain(self, table: str) -> dict[str, int]:
        """Compact small files (OPTIMIZE). The transaction identifiers stay in the log (Delta keeps them
        through OPTIMIZE and checkpoints); VACUUM, which deletes the replaced files, is left to Delta's
        retention period (7 days by default) so a reader of an older version is never cut short."""
        try:
            metrics = self.spark.sql(f"OPTIMIZE delta.`{self.path(table)}`").first()
        except Exception as e:
            raise SinkError(f"compacting {self.where(table)} failed: {java_message(e)}") from e
        if metrics is None:
            return {"files_rewritten": 0, "files_added": 0}
        stats = metrics["metrics"]
        return {"files_rewritten": int(stats["numFilesRemoved"]), "files_added": int(stats["numFilesAdded"])}

    def read(self, table: str) -> pa.Table:
        """The whole table (for tests, validation and small runs)."""
        return self.spark.read.format("delta").load(self.path(table)).toArrow()
