"""Delta in ``mirror``: the tables live on the emulator's S3 (Hadoop's S3A at its endpoint), a tape writes
the same rows there as in ``lite``, and a restart that re-runs a committed batch writes nothing twice. On
EMR (real AWS, no endpoint) no Hadoop option is ours: EMRFS serves ``s3://``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from core.errors import UnsafeEndpointError
from pipeline.aws import DUMMY_CREDENTIALS, client
from pipeline.config import RuntimeSettings
from pipeline.runner import PipelineRunner
from pipeline.sinks.delta import DeltaSink, delta_root
from pipeline.sinks.memory import MemoryAlertSink, MemoryTableSink
from pipeline.sinks.spark_catalog import delta_storage_properties
from pipeline.spark import catalog_conf
from pipeline.testkit import small_config
from tests.pipeline.sinks.test_sink_contract import mirror_config
from tests.pipeline.sinks.test_spark_writers import lite, rows
from tests.pipeline.test_runner_tape import CFG, write_tape

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def test_emr_gets_no_hadoop_options_and_the_emulator_gets_s3a_at_its_endpoint(tmp_path: Path) -> None:
    emr = RuntimeSettings(profile="aws", allow_real_aws=True, state_dir=tmp_path)
    assert delta_storage_properties(emr) == {}
    aws = small_config().model_copy(update={"runtime": emr})
    assert not any(k.startswith("spark.hadoop.") for k in catalog_conf(aws))
    assert delta_root(aws) == f"s3://{aws.storage.warehouse_bucket}/delta"

    s3 = "http://127.0.0.1:4002"
    mirror = RuntimeSettings(profile="mirror", aws_endpoint="http://127.0.0.1:4000", state_dir=tmp_path,
                             service_endpoints={"s3": s3})
    props = delta_storage_properties(mirror)
    assert props["fs.s3.impl"] == "org.apache.hadoop.fs.s3a.S3AFileSystem"
    assert (props["fs.s3a.endpoint"], props["fs.s3a.path.style.access"]) == (s3, "true")
    assert props["fs.s3a.access.key"] == DUMMY_CREDENTIALS["aws_access_key_id"]
    conf = catalog_conf(small_config().model_copy(update={"runtime": mirror}))
    hadoop = {k.removeprefix("spark.hadoop."): v for k, v in conf.items() if k.startswith("spark.hadoop.")}
    assert hadoop == props


def test_a_remote_s3_endpoint_is_refused(spark: SparkSession, tmp_path: Path) -> None:
    remote = RuntimeSettings(profile="mirror", aws_endpoint="http://127.0.0.1:4000", state_dir=tmp_path,
                             service_endpoints={"s3": "https://s3.example.com"})
    with pytest.raises(UnsafeEndpointError, match=r"s3\.example\.com"):
        DeltaSink(small_config().model_copy(update={"runtime": remote}), spark)


@pytest.mark.integration
def test_a_tape_writes_the_same_rows_on_the_emulator_s_s3_as_in_lite_and_a_restart_writes_nothing_twice(
    spark: SparkSession, aws_endpoint: str, tmp_path: Path
) -> None:
    tape = write_tape(tmp_path / "tape")
    local = lite(tmp_path / "lite")
    remote = mirror_config(aws_endpoint, tmp_path / "mirror")
    remote = CFG.model_copy(update={"runtime": remote.runtime, "storage": remote.storage})
    memory = MemoryTableSink()
    checkpoint = tmp_path / "ck"

    def run(*sinks: object) -> PipelineRunner:
        runner = PipelineRunner(remote, checkpoint=checkpoint, source=tape, spark=spark,
                                table_sinks=list(sinks), alert_sinks=[MemoryAlertSink()],  # type: ignore[arg-type]
                                max_records_per_batch=40)
        runner.run(until_idle=True, timeout=300)
        return runner

    on_lite, on_s3 = DeltaSink(local, spark), DeltaSink(remote, spark)
    runner = run(memory, on_lite, on_s3)
    names = [t.name for t in runner.tables()]
    listed = client("s3", remote.runtime).list_objects_v2(Bucket=remote.storage.warehouse_bucket,
                                                          Prefix="delta/")
    assert any(o["Key"].endswith(".parquet") for o in listed.get("Contents", []))
    assert any("/_delta_log/" in o["Key"] for o in listed.get("Contents", []))
    assert rows(memory, "trades") and rows(memory, "alerts")
    for name in names:
        assert rows(on_s3, name) == rows(on_lite, name) == rows(memory, name), name

    # the process died after the sinks committed the last batch, before Spark recorded it: the restart
    # re-runs that batch (the same range of the tape) into the same tables
    commits = checkpoint / "query" / "commits"
    last = max(int(p.name) for p in commits.iterdir() if p.name.isdigit())
    (commits / str(last)).unlink()
    (commits / f".{last}.crc").unlink(missing_ok=True)
    before = {name: rows(on_s3, name) for name in names}
    again = DeltaSink(remote, spark)
    run(again)  # a new sink: it knows the committed batches from the tables' logs only
    assert {name: rows(again, name) for name in names} == before
