"""The EMR Serverless job of each tier: StartJobRun against botocore's service model, sizes, settings."""

from __future__ import annotations

import shlex
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline import emr_job
from pipeline.config import TIERS, Config, ConfigLoader, EmrWorker
from pipeline.emr import WORKER_SIZES
from pipeline.emr_job import start_job_run_problems
from pipeline.jars import load_manifest

BASE = "s3://artifacts-bucket/coattail/medium"


def aws_config(tier: str) -> Config:
    config = ConfigLoader().load(tier, env={})
    return config.model_copy(update={"runtime": config.runtime.model_copy(update={"profile": "aws"})})


def request_of(tier: str) -> dict[str, Any]:
    return emr_job.start_job_run_request(
        aws_config(tier), base_uri=BASE, application_id="00fabc123def4567",
        execution_role_arn="arn:aws:iam::123456789012:role/coattail-job",
    )  # fmt: skip


def submitted_conf(request: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """``--conf`` settings and the other options of a request's sparkSubmitParameters."""
    words = shlex.split(request["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"])
    conf: dict[str, str] = {}
    options: dict[str, str] = {}
    for flag, value in zip(words[::2], words[1::2], strict=True):
        if flag == "--conf":
            key, _, setting = value.partition("=")
            conf[key] = setting
        else:
            options[flag] = value
    return conf, options


@pytest.mark.parametrize("tier", TIERS)
def test_start_job_run_request_is_valid_for_botocore_emr_serverless(tier: str) -> None:
    assert start_job_run_problems(request_of(tier)) is None
    broken = {**request_of(tier), "mode": 7}
    assert "mode" in (start_job_run_problems(broken) or "")


@pytest.mark.parametrize("tier", TIERS)
def test_the_request_runs_the_package_in_streaming_mode_with_emr_s_jars(tier: str) -> None:
    request = request_of(tier)
    config = aws_config(tier)
    assert request["mode"] == "STREAMING"
    assert request["tags"]["coattail:release"] == config.spark.emr.release == "emr-spark-8.0.0"
    driver = request["jobDriver"]["sparkSubmit"]
    assert driver["entryPoint"] == f"{BASE}/{emr_job.ENTRY_POINT}"
    conf, options = submitted_conf(request)
    assert options == {"--archives": f"{BASE}/{emr_job.ENV_ARCHIVE}#environment",
                       "--files": f"{BASE}/{emr_job.CONFIG_FILE}"}  # fmt: skip
    # EMR's bundled Iceberg and Delta, never our Maven jars
    assert conf["spark.jars"].split(",") == list(emr_job.EMR_JARS)
    ours = {jar.file_name for jar in load_manifest()}
    assert not any(jar.rsplit("/", 1)[-1] in ours for jar in conf["spark.jars"].split(","))
    assert conf["spark.executorEnv.PYSPARK_PYTHON"] == "./environment/bin/python"
    assert conf["spark.emr-serverless.driverEnv.PYSPARK_PYTHON"] == "./environment/bin/python"
    assert conf["spark.coattail.keyedState"] == config.spark.keyed_state
    assert conf["spark.sql.catalog.coattail.type"] == "glue"
    assert conf["spark.sql.catalog.coattail.warehouse"] == f"s3://{config.storage.warehouse_bucket}/"
    emr = config.spark.emr
    assert conf["spark.executor.cores"] == str(emr.executor.vcpu)
    assert conf["spark.executor.instances"] == str(emr.initial_capacity.executors)
    assert int(conf["spark.sql.shuffle.partitions"]) == (
        int(conf["spark.dynamicAllocation.maxExecutors"]) * emr.executor.vcpu
    )
    assert "--allow-real-aws" in driver["entryPointArguments"]


@pytest.mark.parametrize("tier", TIERS)
def test_executors_at_maximum_fit_the_tier_s_maximum_capacity(tier: str) -> None:
    config = aws_config(tier)
    emr = config.spark.emr
    executors = emr_job.max_executors(config)
    assert executors >= emr.initial_capacity.executors
    assert emr.driver.vcpu + executors * emr.executor.vcpu <= emr.maximum_capacity.vcpu
    assert emr.driver.memory_gb + executors * emr.executor.memory_gb <= emr.maximum_capacity.memory_gb


@st.composite
def workers(draw: st.DrawFn) -> EmrWorker:
    vcpu = draw(st.sampled_from(sorted(WORKER_SIZES)))
    sizes = WORKER_SIZES[vcpu]
    memory = draw(st.sampled_from(range(sizes.min_memory_gb, sizes.max_memory_gb + 1, sizes.memory_step_gb)))
    return EmrWorker(vcpu=vcpu, memory_gb=memory)


@given(workers())
def test_heap_and_spark_s_overhead_fit_every_allowed_worker(worker: EmrWorker) -> None:
    heap_mb = emr_job.heap_gb(worker) * 1024
    overhead_mb = max(384, emr_job.MEMORY_OVERHEAD_FACTOR * heap_mb)
    assert heap_mb + overhead_mb <= worker.memory_gb * 1024
    assert emr_job.heap_gb(worker) >= 1
