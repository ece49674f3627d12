"""The tier's job as EMR Serverless runs it: Spark settings, ``sparkSubmitParameters`` and the StartJobRun
request, all generated from the tier file. Nothing here talks to AWS.

``coattail package`` (``infra.package``) writes these next to the pipeline's wheel, the packed Python
environment and the entry point; ``coattail cluster`` (``infra.cluster``) submits the same settings to a
Spark standalone cluster, with our Maven-installed jars in place of EMR's bundled ones.

EMR Serverless ships Python dependencies as an archive unpacked in every driver's and executor's working
directory (``--archives env.tar.gz#environment``); both run ``./environment/bin/python``. Spark itself,
pyspark and Java come from the release, as Iceberg and Delta do (``EMR_JARS``).
"""

from __future__ import annotations

import hashlib
import json
import math
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.config import Config, EmrWorker
from pipeline.spark import catalog_conf, session_conf

ENV_ARCHIVE = "env.tar.gz"
ENV_DIR = "environment"
ENV_PYTHON = f"./{ENV_DIR}/bin/python"
ENTRY_POINT = "main.py"
CONFIG_FILE = "config.json"
ENTRY_POINT_SOURCE = (
    '"""The coattail streaming job (pipeline.jobs.streaming), as spark-submit runs it."""\n\n'
    "from pipeline.jobs.streaming import main\n\n"
    'if __name__ == "__main__":\n'
    "    main()\n"
)
# Iceberg's and Delta's jars as EMR Serverless bundles them (its Iceberg and Delta Lake user guides); the
# release's versions are pipeline.emr's, the same as ours in pipeline/spark-jars.json.
EMR_JARS = (
    "/usr/share/aws/iceberg/lib/iceberg-spark3-runtime.jar",
    "/usr/share/aws/delta/lib/delta-spark.jar",
    "/usr/share/aws/delta/lib/delta-storage.jar",
)
# Spark adds max(384 MiB, 10 %) of overhead to a JVM's heap; heap plus overhead must fit the worker.
MEMORY_OVERHEAD_FACTOR = 0.1
# On EMR the driver's local disk holds the checkpoint (pipeline.runner keeps its state and spool as
# local files): it does not survive a restart of the job run.
EMR_CHECKPOINT = "/tmp/coattail/checkpoint"


def heap_gb(worker: EmrWorker) -> int:
    """The JVM heap that fits a worker of this size next to Spark's memory overhead."""
    return math.floor(worker.memory_gb / (1 + MEMORY_OVERHEAD_FACTOR))


def max_executors(config: Config) -> int:
    """Executors at the tier's maximum capacity: what its vCPUs hold beside the driver."""
    emr = config.spark.emr
    return max(emr.initial_capacity.executors,
               (emr.maximum_capacity.vcpu - emr.driver.vcpu) // emr.executor.vcpu)


def emr_shuffle_partitions(config: Config) -> int:
    """One shuffle partition per executor core at the maximum capacity."""
    return max_executors(config) * config.spark.emr.executor.vcpu


def emr_conf(config: Config) -> dict[str, str]:
    """Every Spark setting of the EMR job: the pipeline's session settings, the catalog properties of
    ``config``'s profile, worker sizes from the tier's ``spark.emr``, the packed environment's Python
    and EMR's bundled Iceberg and Delta jars."""
    emr = config.spark.emr
    return (
        session_conf(config, shuffle_partitions=emr_shuffle_partitions(config))
        | catalog_conf(config)
        | {
            "spark.driver.cores": str(emr.driver.vcpu),
            "spark.driver.memory": f"{heap_gb(emr.driver)}g",
            "spark.emr-serverless.driver.disk": f"{emr.driver.disk_gb}g",
            "spark.executor.cores": str(emr.executor.vcpu),
            "spark.executor.memory": f"{heap_gb(emr.executor)}g",
            "spark.emr-serverless.executor.disk": f"{emr.executor.disk_gb}g",
            "spark.executor.instances": str(emr.initial_capacity.executors),
            "spark.dynamicAllocation.maxExecutors": str(max_executors(config)),
            "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": ENV_PYTHON,
            "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": ENV_PYTHON,
            "spark.executorEnv.PYSPARK_PYTHON": ENV_PYTHON,
            "spark.jars": ",".join(EMR_JARS),
        }
    )


def submit_arguments(conf: Mapping[str, str], *, archive: str, files: Sequence[str]) -> list[str]:
    """spark-submit's options for ``conf``, the environment archive (unpacked as ``environment``) and
    the files shipped beside the entry point (the job's config)."""
    args = ["--archives", f"{archive}#{ENV_DIR}"]
    if files:
        args += ["--files", ",".join(files)]
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    return args


def entry_point_arguments(
    *, checkpoint: str, runtime: Sequence[str], config: str = CONFIG_FILE
) -> list[str]:
    """The job's arguments (``pipeline.jobs.streaming``): its config file (the one shipped beside the
    entry point by default), where it checkpoints and how it reaches AWS (``runtime``: ``--profile aws
    --allow-real-aws`` on EMR, ``--runtime FILE`` on a local cluster)."""
    return ["--config", config, "--checkpoint", checkpoint, *runtime]


def start_job_run_request(
    config: Config, *, base_uri: str, application_id: str, execution_role_arn: str
) -> dict[str, object]:
    """The StartJobRun request (``aws emr-serverless start-job-run --cli-input-json``) of the tier's
    streaming job, whose package lives under ``base_uri`` (``s3://bucket/prefix``)."""
    base = base_uri.rstrip("/")
    parameters = submit_arguments(
        emr_conf(config), archive=f"{base}/{ENV_ARCHIVE}", files=[f"{base}/{CONFIG_FILE}"]
    )
    request: dict[str, object] = {
        "applicationId": application_id,
        "executionRoleArn": execution_role_arn,
        "name": f"coattail-{config.tier}",
        "mode": "STREAMING",
        "retryPolicy": {"maxFailedAttemptsPerHour": 1},
        "jobDriver": {
            "sparkSubmit": {
                "entryPoint": f"{base}/{ENTRY_POINT}",
                "entryPointArguments": entry_point_arguments(
                    checkpoint=EMR_CHECKPOINT, runtime=["--profile", "aws", "--allow-real-aws"]
                ),
                "sparkSubmitParameters": shlex.join(parameters),
            }
        },
        "tags": {"coattail:tier": config.tier, "coattail:release": config.spark.emr.release},
    }
    # the same request sent twice (a retried CLI call) starts one job run, as boto3's own token would
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
    return {**request, "clientToken": f"coattail-{config.tier}-{digest[:40]}"}


def start_job_run_problems(request: Mapping[str, Any]) -> str | None:
    """What botocore's EMR Serverless model finds wrong with a StartJobRun request, or None."""
    from botocore.session import get_session
    from botocore.validate import ParamValidator

    shape = get_session().get_service_model("emr-serverless").operation_model("StartJobRun").input_shape
    if shape is None:
        return "botocore's emr-serverless model has no StartJobRun input"
    report = ParamValidator().validate(request, shape)
    return report.generate_report() if report.has_errors() else None
