"""Spark sources of raw records (``pipeline.parse.RAW_SCHEMA``): Kinesis, and tape files for backtests."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def register_sources(spark: SparkSession) -> None:
    """Make ``coattail-kinesis`` and ``coattail-tape`` known to ``spark`` (idempotent)."""
    from pipeline.source.kinesis import KinesisDataSource
    from pipeline.source.tape import TapeDataSource

    spark.dataSource.register(KinesisDataSource)
    spark.dataSource.register(TapeDataSource)
