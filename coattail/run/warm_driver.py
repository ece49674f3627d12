"""A long-lived local Spark driver that ``coattail up --warm-driver`` keeps and ``coattail run`` attaches to.

Starting a local driver (the JVM, Spark's first job, the Python worker daemon) costs more CPU than the cold
start budget on two cores. So a keeper process (``coattail.run.warm_keeper``) starts one once, with the
tier's static settings (``pipeline.spark.driver_conf``), warms it and records how to reach it in the state
directory: ``warm-driver.json`` (mode 0600: it holds the gateway's secret), beside ``stack.json``. Spark's
gateway exits when its stdin closes, so the keeper lives as long as the driver.

A run attaches (``attach``) when the recorded driver is alive and its fingerprint equals the one the run
would build: the static settings, Java, ``SPARK_HOME``, the interpreter, the working directory, the
environment Spark's processes inherit, and the content of our Python packages, config files and pinned
requirements (Spark's reused Python workers keep what they imported, so code that changed since must
never run in them). It then wraps the running JavaSparkContext and takes a new ``SparkSession`` of its
own, where the run's SQL settings go (``run_conf``); the Python data sources the keeper registered are
already known to it. Otherwise the run says why in one line and starts a driver of its own, as without
it. The driver's Python executable is the launcher of the keeper's warm Python server
(``coattail.run.warm_python``), which forks the Python process each query's streaming source runs in
with its imports done; the run's context takes the same executable (``python_exec``).

One run at a time: the JVM has one Python callback client (foreachBatch calls the Python process that
started the query last), so two runs on one driver would call each other's batch functions. The run that
attaches holds ``warm-driver.lock`` until it is done; a second run does not wait (a run may last a day) but
starts its own driver, and says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import psutil

from core.errors import StackError
from infra.processes import terminate
from pipeline.config import Config

if TYPE_CHECKING:
    from py4j.java_gateway import JavaGateway
    from pyspark.sql import SparkSession

RECORD_FILE = "warm-driver.json"
LOCK_FILE = "warm-driver.lock"
LOG_FILE = "warm-driver.log"
CONFIG_FILE = "warm-driver-config.json"
START_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 30.0
_SOURCE_PACKAGES = ("core", "pipeline", "coattail", "sim", "replay", "infra")
_ENV_PREFIXES = ("COATTAIL_", "AWS_", "PYSPARK_", "SPARK_", "JAVA_", "PYTHON", "HADOOP_")
_RUN_CONF_PREFIXES = ("spark.sql.", "spark.coattail.")
_REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class WarmDriver:
    """What ``warm-driver.json`` records: how to reach the driver and what it was built from."""

    port: int
    secret: str
    keeper_pid: int
    jvm_pid: int
    jvm_started: float
    """The JVM's start time (``psutil.create_time``), so that a reused pid is not taken for it."""
    fingerprint: str
    tier: str
    python_exec: str | None = None
    """The Python executable the driver's context runs (the launcher of ``coattail.run.warm_python``):
    a run's context takes it too, so its query's source runner is forked warm. None in the
    record of a keeper from before it (``down`` still stops that one)."""

    def alive(self) -> bool:
        """The keeper and its JVM both still run."""
        try:
            jvm = psutil.Process(self.jvm_pid)
            return psutil.pid_exists(self.keeper_pid) and jvm.is_running() and (
                abs(jvm.create_time() - self.jvm_started) < 1.0 and jvm.status() != psutil.STATUS_ZOMBIE
            )
        except psutil.Error:
            return False


def record_path(state_dir: Path) -> Path:
    """Where the warm driver of ``state_dir`` is recorded."""
    return state_dir / RECORD_FILE


def read_record(state_dir: Path) -> WarmDriver | None:
    """The recorded warm driver, or None when none is (or the file is unreadable: it is then stale)."""
    try:
        return WarmDriver(**json.loads(record_path(state_dir).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write_record(state_dir: Path, driver: WarmDriver) -> None:
    """Record ``driver`` readable by its owner alone, complete or not at all."""
    path = record_path(state_dir)
    partial = path.with_suffix(".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(driver), f)
    partial.replace(path)


def fingerprint(config: Config) -> str:
    """What a driver for ``config`` is built from and what its processes run: equal fingerprints mean
    a run may use the driver as if it had started it (see the module's docstring)."""
    from pipeline.spark import driver_conf
    from pipeline.spark_home import installed_pyspark

    conf, java = driver_conf(config)
    per_run = run_conf(config)
    digest = hashlib.sha256()
    parts = {
        "conf": {k: v for k, v in conf.items() if k not in per_run},
        "java": str(java.home) if java else None,
        "pyspark": str(installed_pyspark()),
        "python": sys.executable,
        "cwd": os.getcwd(),
        "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith(_ENV_PREFIXES)},
    }
    digest.update(json.dumps(parts, sort_keys=True).encode())
    for path in _source_files():
        digest.update(str(path.relative_to(_REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


def run_conf(config: Config) -> dict[str, str]:
    """The settings of ``pipeline.spark.session_conf`` a run sets on its own session of the warm driver:
    Spark SQL's and ours, which a session may change (one that turns out static makes the attach fail,
    and the run start a driver of its own). The others, Spark core's, are the driver's: fingerprinted."""
    from pipeline.spark import session_conf

    conf = session_conf(config, shuffle_partitions=config.spark.local.shuffle_partitions)
    return {k: v for k, v in conf.items() if k.startswith(_RUN_CONF_PREFIXES)}


def _source_files() -> list[Path]:
    # the lock file stands for the installed packages, which reused Python workers keep imported too
    files = [p for package in _SOURCE_PACKAGES for p in (_REPO / package).rglob("*.py")]
    pinned = [p for p in (_REPO / "requirements.lock", _REPO / "pyproject.toml") if p.is_file()]
    return sorted(files + list((_REPO / "config").rglob("*.yaml")) + pinned)


def start(config: Config) -> WarmDriver:
    """Start a warm driver for ``config``'s tier under its state directory and wait until it is ready;
    one that runs there already with the same fingerprint is kept, another is stopped first."""
    state_dir = config.runtime.state_dir
    wanted = fingerprint(config)
    running = read_record(state_dir)
    if running is not None and running.alive() and running.fingerprint == wanted:
        return running
    stop(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / CONFIG_FILE).write_text(config.model_dump_json())
    log = state_dir / LOG_FILE
    with log.open("wb") as out:
        keeper = subprocess.Popen(
            [sys.executable, "-m", "coattail.run.warm_keeper", str(state_dir)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        driver = read_record(state_dir)
        if driver is not None and driver.keeper_pid == keeper.pid:
            return driver
        if keeper.poll() is not None:
            raise StackError(f"the warm Spark driver did not start (exit {keeper.returncode}); see {log}")
        time.sleep(0.2)
    terminate(keeper.pid, STOP_TIMEOUT_S)
    raise StackError(f"the warm Spark driver was not ready within {START_TIMEOUT_S:.0f} s; see {log}")


def stop(state_dir: Path) -> str | None:
    """Stop the warm driver of ``state_dir`` (keeper and JVM) and forget it; what was done, or None when
    no driver was recorded."""
    driver = read_record(state_dir)
    record_path(state_dir).unlink(missing_ok=True)
    (state_dir / CONFIG_FILE).unlink(missing_ok=True)
    if driver is None:
        return None
    if not driver.alive():
        with contextlib.suppress(psutil.Error):
            terminate(driver.keeper_pid, STOP_TIMEOUT_S)
        return f"warm Spark driver (JVM pid {driver.jvm_pid}) was no longer running; forgotten"
    terminate(driver.keeper_pid, STOP_TIMEOUT_S)
    with contextlib.suppress(psutil.Error):
        jvm = psutil.Process(driver.jvm_pid)
        if abs(jvm.create_time() - driver.jvm_started) < 1.0:
            terminate(driver.jvm_pid, STOP_TIMEOUT_S)
    return f"stopped the warm Spark driver (keeper pid {driver.keeper_pid}, JVM pid {driver.jvm_pid})"


def describe(state_dir: Path) -> str | None:
    """One line for ``coattail status`` about the warm driver, or None when none is recorded."""
    driver = read_record(state_dir)
    if driver is None:
        return None
    if not driver.alive():
        return (
            f"warm Spark driver: dead (keeper pid {driver.keeper_pid}, JVM pid {driver.jvm_pid}); "
            "`coattail down` forgets it, `coattail up --warm-driver` starts another"
        )
    return f"warm Spark driver: running, tier {driver.tier}, JVM pid {driver.jvm_pid}"


@dataclass
class Attached:
    """A run's session on the warm driver; ``release`` lets the next run attach."""

    session: SparkSession
    driver: WarmDriver
    lock: IO[bytes]

    def release(self) -> None:
        """Give the driver up (its context keeps running); the run's queries are stopped by then."""
        self.lock.close()


def attach(config: Config) -> Attached | str:
    """A new session of ``config``'s state directory's warm driver for this run, or the reason (one line)
    why the run starts a driver of its own; empty when no warm driver is recorded."""
    from pyspark import SparkContext

    driver = read_record(config.runtime.state_dir)
    if driver is None:
        return ""
    if not driver.alive():
        return (
            f"the warm Spark driver recorded in {config.runtime.state_dir} is not running (JVM pid "
            f"{driver.jvm_pid}); starting a driver of its own (`coattail up --warm-driver` starts another)"
        )
    if driver.fingerprint != fingerprint(config):
        return (
            f"the warm Spark driver was started for other settings or code (tier {driver.tier}); starting a "
            f"driver of its own (`coattail up --tier {config.tier} --warm-driver` replaces it)"
        )
    if SparkContext._gateway is not None:
        return "this process already runs Spark; the run uses that session"
    lock = (config.runtime.state_dir / LOCK_FILE).open("wb")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return "the warm Spark driver is busy with another run; starting a driver of its own"
    try:
        session = _connect(driver, config)
    except StackError as e:  # the driver is gone or refuses: the run goes on without it
        lock.close()
        return f"could not attach to the warm Spark driver ({e}); starting a driver of its own"
    return Attached(session, driver, lock)


def _connect(driver: WarmDriver, config: Config) -> SparkSession:
    """Wrap the driver's running context in this process and open a new session on it with the run's
    per-run settings."""
    from pyspark import SparkContext
    from pyspark.java_gateway import launch_gateway
    from pyspark.sql import SparkSession

    # pyspark connects to a gateway it did not launch when these are set; later sessions of this
    # process must launch their own, so they are not left set
    os.environ["PYSPARK_GATEWAY_PORT"] = str(driver.port)
    os.environ["PYSPARK_GATEWAY_SECRET"] = driver.secret
    try:
        gateway = launch_gateway()  # type: ignore[no-untyped-call]  # pyspark leaves it untyped
    except Exception as e:  # py4j's: nothing listens there, or the secret is refused
        raise StackError(f"{type(e).__name__}: {e}") from e
    finally:
        del os.environ["PYSPARK_GATEWAY_PORT"], os.environ["PYSPARK_GATEWAY_SECRET"]
    # py4j numbers a process's Python objects the JVM calls back (foreachBatch's function) from p0, and
    # when the JVM collects an earlier run's, it tells the process attached now to drop that number: this
    # run's object of the same number went with it ("Object ID unknown" in a later trigger)
    gateway.gateway_property.pool.next_id = time.time_ns()
    try:
        jvm = gateway.jvm
        context = SparkContext(
            gateway=gateway, jsc=jvm.JavaSparkContext(jvm.org.apache.spark.SparkContext.getOrCreate())
        )
        if driver.python_exec is not None:
            context.pythonExec = driver.python_exec
        session = SparkSession(context).newSession()
        for key, value in run_conf(config).items():
            session.conf.set(key, value)
    except Exception as e:
        # read while the gateway is there: the text of a Spark error asks the JVM
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        _forget(gateway)
        raise StackError(reason) from e
    except BaseException:
        _forget(gateway)
        raise
    return session


def _forget(gateway: JavaGateway) -> None:
    """This process as if it had never attached: a driver of the run's own may be started in it next."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    SparkContext._active_spark_context = None
    SparkContext._gateway = None
    SparkContext._jvm = None
    SparkSession._instantiatedSession = None
    gateway.close()  # shutdown() would stop the driver's gateway server too
