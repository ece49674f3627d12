"""The settings every placement of the pipeline shares: session, catalogs, where the driver binds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from core.errors import PipelineError
from pipeline.config import ConfigLoader, RuntimeSettings
from pipeline.spark import catalog_conf, driver_host, session_conf

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.mark.parametrize("master", ["local[2]", "local[*]", "spark://127.0.0.1:7077", "spark://localhost:7077"])
def test_the_driver_binds_where_a_master_on_this_machine_reaches_it(master: str) -> None:
    assert driver_host(master) == "127.0.0.1"


def test_a_master_without_a_host_is_named() -> None:
    with pytest.raises(PipelineError, match="spark://HOST:PORT"):
        driver_host("spark://:7077")


def test_lite_catalog_is_iceberg_s_jdbc_catalog_on_pyiceberg_s_sqlite_file(tmp_path: Path) -> None:
    config = ConfigLoader().load("medium", env={})
    config = config.model_copy(update={"runtime": RuntimeSettings(state_dir=tmp_path)})
    conf = catalog_conf(config)
    root = tmp_path.resolve() / "iceberg"
    assert conf["spark.sql.catalog.coattail.type"] == "jdbc"
    assert conf["spark.sql.catalog.coattail.uri"] == f"jdbc:sqlite:{root / 'catalog.db'}"
    assert conf["spark.sql.catalog.coattail.warehouse"] == (root / "warehouse").as_uri()


def test_mirror_catalog_is_glue_and_s3_at_the_emulator(tmp_path: Path) -> None:
    config = ConfigLoader().load("small", env={})
    runtime = RuntimeSettings(profile="mirror", aws_endpoint="http://127.0.0.1:5123",
                              service_endpoints={"glue": "http://127.0.0.1:5000"})  # fmt: skip
    conf = catalog_conf(config.model_copy(update={"runtime": runtime}))
    assert conf["spark.sql.catalog.coattail.type"] == "glue"
    assert conf["spark.sql.catalog.coattail.glue.endpoint"] == "http://127.0.0.1:5000"
    assert conf["spark.sql.catalog.coattail.s3.endpoint"] == "http://127.0.0.1:5123"
    assert conf["spark.sql.catalog.coattail.s3.path-style-access"] == "true"


@pytest.mark.parametrize("tier", ["small", "medium"])
def test_the_session_carries_the_tier_s_keyed_mode(tier: str) -> None:
    config = ConfigLoader().load(tier, env={})
    conf = session_conf(config, shuffle_partitions=3)
    assert conf["spark.coattail.keyedState"] == config.spark.keyed_state
    assert conf["spark.sql.shuffle.partitions"] == "3"


@pytest.mark.spark
def test_spark_reads_and_writes_the_lite_catalog_pyiceberg_keeps(spark: SparkSession, tmp_path: Path) -> None:
    import pyarrow as pa

    from pipeline.jars import installed_jars
    from pipeline.sinks.iceberg import load_catalog
    from pipeline.sinks.spark_catalog import prepare_lite_catalog

    if not installed_jars():
        pytest.skip("Spark's jars are not installed (`make jars`)")
    config = ConfigLoader().load("small", env={})
    config = config.model_copy(update={"runtime": RuntimeSettings(state_dir=tmp_path)})
    catalog = load_catalog(config.runtime, config.storage.warehouse_bucket)
    catalog.create_namespace("conf_check")
    table = catalog.create_table("conf_check.t", schema=pa.schema([("a", pa.int64())]))
    table.append(pa.table({"a": [1, 2, 3]}))
    prepare_lite_catalog(config.runtime)
    conf = {k: v for k, v in catalog_conf(config).items() if k.startswith("spark.sql.catalog.coattail")}
    for key, value in conf.items():  # catalogs load on first use: runtime settings are enough
        spark.conf.set(key, value)
    try:
        assert spark.sql("SELECT sum(a) AS s FROM coattail.conf_check.t").collect()[0]["s"] == 6
        spark.sql("INSERT INTO coattail.conf_check.t VALUES (4)")
    finally:
        for key in conf:
            spark.conf.unset(key)
    assert sorted(catalog.load_table("conf_check.t").scan().to_arrow()["a"].to_pylist()) == [1, 2, 3, 4]
