"""What the Spark-written sinks share: Arrow tables as DataFrames, identifiers, Java error messages."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from core.errors import SinkError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def arrow_frame(spark: SparkSession, data: pa.Table) -> DataFrame:
    """``data`` as a Spark DataFrame with its Arrow types (the rows pass as Arrow, not as Python)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    # PySpark 4.0 drops the rows after an empty chunk (a table concatenated with an empty one, as the
    # router's grouped commits build them): only non-empty batches are handed over
    batches = [batch for batch in data.to_batches() if batch.num_rows]
    whole = pa.Table.from_batches(batches, schema=data.schema) if batches else data.schema.empty_table()
    return spark.createDataFrame(whole, schema=from_arrow_schema(data.schema))


def quoted(*parts: str) -> str:
    """A Spark SQL multi-part identifier, each part back-quoted."""
    return ".".join("`" + p.replace("`", "``") + "`" for p in parts)


def java_message(error: BaseException) -> str:
    """A Spark or Java exception's first line, without its stack trace."""
    # py4j's first line only names the call ("An error occurred while calling o219.sql."): the Java
    # exception's own message follows it
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("An error occurred while calling")]
    return lines[0].lstrip(": ") if lines else type(error).__name__


def append_error(where: str, batch: str, error: BaseException) -> SinkError:
    """The error for a failed Spark append of ``batch`` to ``where``, with Java's message."""
    return SinkError(f"appending batch {batch} to {where} failed in Spark: {java_message(error)}")
