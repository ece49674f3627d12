"""The SparkSession the pipeline runs in, and the Spark settings every placement of it shares.

``session_conf`` is what every session of the pipeline runs with, wherever it runs: in this process
(``build_session``, local mode), submitted to a Spark standalone cluster or submitted to EMR Serverless
(``submitted_session``; ``pipeline.emr_job`` turns the same settings into ``sparkSubmitParameters``).
``catalog_conf`` holds the Iceberg and Delta catalog properties of a profile, in one place for every
submission.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from core.errors import PipelineError
from pipeline.config import Config
from pipeline.jars import installed_jars
from pipeline.java import JavaRuntime, locate_java, spark_java_home
from pipeline.jvm_archive import archive_path, driver_java_options
from pipeline.sinks.delta import DELTA_CATALOG
from pipeline.sinks.iceberg import CATALOG_NAME
from pipeline.sinks.spark_catalog import (
    SESSION_EXTENSIONS,
    delta_storage_properties,
    iceberg_catalog_properties,
)
from pipeline.spark_home import installed_pyspark, worker_spark_home

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LOOPBACK = "127.0.0.1"
STATE_STORE_PROVIDER = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
KEYED_STATE_CONF = "spark.coattail.keyedState"
"""A submission may set the keyed-state mode here (``driver`` | ``state_store``); it wins over the job's
config file, so one package runs in either mode (``pipeline.jobs.streaming``)."""
LOCAL_CHECKPOINT_MANAGER = "org.apache.spark.sql.execution.streaming.FileSystemBasedCheckpointFileManager"
"""For checkpoints on a local POSIX file system (local mode, a cluster on this machine): the default
FileContext-based manager spends about 25 ms per offset- and commit-log entry on a local disk, twice per
trigger; this one writes a temporary file and renames it, which is atomic there: a tenth of the time."""
SQL_EXTENSIONS = ",".join(SESSION_EXTENSIONS)
JVM_EXIT_TIMEOUT_S = 60


def session_conf(config: Config, *, shuffle_partitions: int) -> dict[str, str]:
    """The Spark settings of every session of the pipeline, local, on a cluster or on EMR."""
    return {
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.streaming.stateStore.providerClass": STATE_STORE_PROVIDER,
        KEYED_STATE_CONF: config.spark.keyed_state,
    }


def catalog_conf(config: Config) -> dict[str, str]:
    """Spark's Iceberg catalog ``coattail``, Delta's session catalog and the Hadoop options for Delta's
    S3 paths, for ``config``'s profile: the properties of ``pipeline.sinks.spark_catalog`` (one place
    for local mode, a cluster and EMR, where the Hadoop options are none).

    In ``lite`` the SQLite catalog must be laid out first (``prepare_lite_catalog``): whoever opens it
    through these settings calls that.
    """
    prefix = f"spark.sql.catalog.{CATALOG_NAME}"
    props = iceberg_catalog_properties(config.runtime, config.storage.warehouse_bucket)
    return {
        "spark.sql.extensions": SQL_EXTENSIONS,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
    } | {prefix + (f".{key}" if key else ""): value for key, value in props.items()} | {
        f"spark.hadoop.{key}": value for key, value in delta_storage_properties(config.runtime).items()
    }


def driver_host(master: str) -> str:
    """The address the driver binds and advertises: loopback for a local master; for ``spark://host:port``
    the address of this machine on the route to the master, which its workers reach."""
    if not master.startswith("spark://"):
        return LOOPBACK
    first = master.removeprefix("spark://").split(",")[0]
    parsed = urlparse(f"spark://{first}")
    if not parsed.hostname:
        raise PipelineError(f"master {master!r} names no host; give it as spark://HOST:PORT")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((parsed.hostname, parsed.port or 7077))  # no packet is sent: routing only
            address: str = probe.getsockname()[0]
    except OSError as e:
        raise PipelineError(f"no route from this machine to the master {master}: {e}") from e
    return address


def _local_jvm() -> tuple[JavaRuntime, Path]:
    """Prepare this process's environment for a local session's JVM: the Java runtime it runs (located
    and returned) and the ``SPARK_HOME`` it starts from (returned)."""
    java = locate_java()
    os.environ["JAVA_HOME"] = str(spark_java_home(java))
    os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
    # Python workers must run this interpreter (the venv), not whatever python3 is on PATH
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # ... and import its installed pyspark, not the zipped copy (pipeline.spark_home); a SPARK_HOME
    # the user set is theirs
    if "SPARK_HOME" not in os.environ and (home := worker_spark_home()) is not None:
        os.environ["SPARK_HOME"] = str(home)
    return java, Path(os.environ.get("SPARK_HOME") or installed_pyspark())


def local_archive(config: Config, jars: Sequence[Path] | None = None) -> Path | None:
    """Where the class archive of ``config``'s local driver JVM lives (``pipeline.jvm_archive``; it may
    not be made yet); None when the session is not local."""
    if not config.spark.local.master.startswith("local"):
        return None
    java, spark_home = _local_jvm()
    return archive_path(java.home, spark_home, installed_jars() if jars is None else jars)


def driver_conf(
    config: Config,
    *,
    local_dir: Path | None = None,
    jars: Sequence[Path] | None = None,
    archive_dump: Path | None = None,
) -> tuple[dict[str, str], JavaRuntime | None]:
    """Every setting ``build_session`` starts ``config``'s session with (master included, the app name
    not), and the Java runtime a local session runs (None on a cluster): the arguments as there."""
    master = config.spark.local.master
    java: JavaRuntime | None = None
    spark_home: Path | None = None
    if master.startswith("local"):
        java, spark_home = _local_jvm()
    host = driver_host(master)
    conf = {"spark.master": master} | session_conf(
        config, shuffle_partitions=config.spark.local.shuffle_partitions
    ) | {
        "spark.driver.memory": config.spark.local.driver_memory,
        "spark.ui.enabled": "false",
        "spark.driver.bindAddress": host,
        "spark.driver.host": host,
    }
    if java is not None and spark_home is not None:
        conf["spark.sql.streaming.checkpointFileManagerClass"] = LOCAL_CHECKPOINT_MANAGER
        # Iceberg, Delta and SQLite's JDBC driver as EMR has them, from the install's cache (`make jars`);
        # nothing is resolved at run time. Without them the session starts as before.
        jars = installed_jars() if jars is None else jars
        if jars:
            classpath = os.pathsep.join(str(jar) for jar in jars)
            conf["spark.driver.extraClassPath"] = conf["spark.executor.extraClassPath"] = classpath
            conf["spark.sql.extensions"] = SQL_EXTENSIONS
        archive = archive_dump or archive_path(java.home, spark_home, jars)
        if options := driver_java_options(archive, dump=archive_dump is not None):
            conf["spark.driver.extraJavaOptions"] = options
    if local_dir is not None:
        conf["spark.local.dir"] = str(local_dir)
    return conf, java


def build_session(
    config: Config,
    *,
    app_name: str = "coattail",
    local_dir: Path | None = None,
    jars: Sequence[Path] | None = None,
    archive_dump: Path | None = None,
) -> tuple[SparkSession, JavaRuntime | None]:
    """Start (or reuse) the session for ``config``'s tier in this process, on ``spark.local.master``.

    In local mode a Java runtime is located first (and returned, so callers can say which was picked),
    ``jars`` (default: Spark's jars installed by ``make jars``) go on the classpath, and the driver JVM
    maps its class archive when ``make install`` made one (``pipeline.jvm_archive``; ``archive_dump``:
    write one there instead, as the JVM exits).
    """
    from pyspark.sql import SparkSession

    conf, java = driver_conf(config, local_dir=local_dir, jars=jars, archive_dump=archive_dump)
    builder = SparkSession.builder.appName(app_name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session, java


def warm_python_workers(spark: SparkSession) -> None:
    """Start Spark's Python worker daemon (and one worker, which Spark reuses) with a one-row job.

    The function is a lambda so that it travels by value: a module's function would make the worker
    import that module (and what it imports) for nothing."""
    spark.range(1).mapInArrow(lambda batches: batches, "id long").collect()


def stop_session(spark: SparkSession) -> None:
    """Stop ``spark`` and end the JVM this process launched for it.

    ``SparkSession.stop`` stops the context but leaves the gateway's JVM running, heap and all, until the
    Python process exits (1.3 GB after a market day, held through a run's reference phase). That JVM
    exits when its stdin closes; the gateway is then forgotten, so a later session in this process
    launches a JVM of its own. A gateway this process did not launch (``spark-submit`` ran the process),
    or one that still serves another running context, is left alone.
    """
    from pyspark import SparkContext

    spark.stop()
    gateway = SparkContext._gateway
    process = getattr(gateway, "proc", None)
    if gateway is None or process is None or SparkContext._active_spark_context is not None:
        return  # not launched here, or another context of this process still runs on it
    gateway.shutdown()
    process.stdin.close()
    try:
        process.wait(timeout=JVM_EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:  # its shutdown hooks hang: the context is stopped already
        process.kill()
        process.wait()
    SparkContext._gateway = None
    SparkContext._jvm = None


def submitted_session(app_name: str) -> SparkSession:
    """The session of a process ``spark-submit`` started (a cluster, EMR): its parameters
    (``pipeline.emr_job``) carry the master, Java, jars and every setting, so it is taken as it is."""
    from pyspark.sql import SparkSession

    session = SparkSession.builder.appName(app_name).getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
