"""The settings every placement of the pipeline shares: session, catalogs, where the driver binds."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import PipelineError
from pipeline.config import ConfigLoader, RuntimeSettings
from pipeline.spark import catalog_conf, driver_host, session_conf


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
