"""The local session has Spark's installed jars (``make jars``) on its classpath: Iceberg's runtime writes and
reads a table, and Delta's, S3A's and SQLite's classes load. Nothing is resolved at run time."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pipeline.jars import installed_jars, load_manifest

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = [
    pytest.mark.spark,
    pytest.mark.skipif(
        len(installed_jars()) < len(load_manifest()), reason="Spark's jars are not installed (`make jars`)"
    ),
]


@pytest.mark.parametrize(
    "class_name",
    ["org.apache.iceberg.spark.SparkCatalog", "io.delta.sql.DeltaSparkSessionExtension", "org.sqlite.JDBC",
     # S3A and the SDK v2 classes it needs (iceberg-aws-bundle's, plus the transfer manager)
     "org.apache.hadoop.fs.s3a.S3AFileSystem", "software.amazon.awssdk.transfer.s3.S3TransferManager"],
)
def test_jar_classes_load_in_the_driver(spark: SparkSession, class_name: str) -> None:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    assert jvm.java.lang.Class.forName(class_name).getName() == class_name


def test_nothing_is_resolved_at_run_time(spark: SparkSession) -> None:
    conf = spark.sparkContext.getConf()
    assert conf.get("spark.jars.packages") is None
    on_classpath = set(str(conf.get("spark.driver.extraClassPath")).split(":"))
    assert {str(p) for p in installed_jars()} <= on_classpath


def test_iceberg_runtime_writes_and_reads_a_table(spark: SparkSession, tmp_path: Path) -> None:
    catalog = "jars_test"
    spark.conf.set(f"spark.sql.catalog.{catalog}", "org.apache.iceberg.spark.SparkCatalog")
    spark.conf.set(f"spark.sql.catalog.{catalog}.type", "hadoop")
    spark.conf.set(f"spark.sql.catalog.{catalog}.warehouse", str(tmp_path))
    spark.sql(f"CREATE TABLE {catalog}.db.t (id BIGINT, symbol STRING) USING iceberg")
    spark.createDataFrame([(1, "BTCUSDT"), (2, "ETHUSDT")], "id BIGINT, symbol STRING").writeTo(
        f"{catalog}.db.t"
    ).append()
    rows = spark.sql(f"SELECT id, symbol FROM {catalog}.db.t ORDER BY id").collect()
    assert [(r.id, r.symbol) for r in rows] == [(1, "BTCUSDT"), (2, "ETHUSDT")]
    snapshots = spark.sql(f"SELECT count(*) AS n FROM {catalog}.db.t.snapshots").collect()[0].n
    assert snapshots == 1
    assert list((tmp_path / "db" / "t" / "metadata").glob("*.metadata.json"))
