"""The table sink ``config.storage`` asks for: Iceberg by pyiceberg or by Spark, or Delta."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline.config import Config
from pipeline.sinks.base import TableSink

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def table_sink_for(config: Config, spark: Callable[[], SparkSession]) -> TableSink:
    """The table sink of ``config.storage`` (``format``, ``writer``); ``spark`` gives the session the
    Spark-written ones need (called only for them, so the pyiceberg path starts no session)."""
    if config.storage.format == "delta":
        from pipeline.sinks.delta import DeltaSink

        return DeltaSink(config, spark())
    if config.storage.writer == "spark":
        from pipeline.sinks.spark_iceberg import SparkIcebergSink

        return SparkIcebergSink(config, spark())
    from pipeline.sinks.iceberg import IcebergSink

    return IcebergSink(config)
