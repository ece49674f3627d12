"""A Spark standalone cluster on this machine: a master and workers on 127.0.0.1, each its own JVM.

``coattail cluster up|down|status``. The daemons are started with ``spark-class`` from the pyspark
installation (its wheel has no ``sbin`` start scripts that work on their own), detached, with a pid file
and a log each under ``<state dir>/cluster/`` and ``cluster.json`` recording the ports. The default size
fits a 2-core machine shared with others: two workers of one core and 1 GiB each, daemons with a small
heap. Workers, and so their executors, run with ``pipeline.aws.local_environment``: no real AWS
credential reaches a job here. ``status`` asks the processes and the master: its RPC port accepts, its
web UI answers and lists the workers alive.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from core.errors import StackError
from infra.processes import LOOPBACK, ServerProcess, free_port, port_accepts, terminate
from pipeline.aws import local_environment
from pipeline.java import locate_java, spark_java_home
from pipeline.spark_home import installed_pyspark

CLUSTER_DIR = "cluster"
STATE_FILE = "cluster.json"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
DAEMON_MEMORY = "256m"
START_TIMEOUT_S = 90.0
# Variables that would make Spark's processes run another Python or import another tree than the job's.
_DROPPED_ENV = ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "PYTHONPATH", "VIRTUAL_ENV", "SPARK_HOME")


class ClusterError(StackError):
    """The local Spark cluster could not be started, found or stopped."""


@dataclass(frozen=True)
class ClusterState:
    """What ``up`` recorded: the ports of the master and of each worker's web UI, and their sizes."""

    master_port: int
    master_ui_port: int
    worker_ui_ports: tuple[int, ...]
    worker_cores: int
    worker_memory: str

    @property
    def master_url(self) -> str:
        """``spark://127.0.0.1:<port>``, what a driver is submitted to."""
        return f"spark://{LOOPBACK}:{self.master_port}"


@dataclass(frozen=True)
class ClusterStatus:
    """The truth about the cluster under one state dir."""

    state: ClusterState | None
    master: str
    """``running`` | ``stopped`` | ``dead`` | ``unhealthy`` (``infra.processes.ServerProcess.state``)."""
    workers: tuple[str, ...]
    alive_workers: int
    """Workers the master's web UI lists as ALIVE (0 when it does not answer)."""

    @property
    def healthy(self) -> bool:
        """Master and every worker running, and the master counts every worker alive."""
        return (
            self.state is not None
            and self.master == "running"
            and all(w == "running" for w in self.workers)
            and self.alive_workers == len(self.state.worker_ui_ports)
        )

    def summary(self) -> str:
        """One line for the user."""
        if self.state is None:
            return "no cluster (start one with `coattail cluster up`)"
        workers = ", ".join(f"worker {i}: {w}" for i, w in enumerate(self.workers, 1))
        return (
            f"{self.state.master_url}: master {self.master}, {workers}; {self.alive_workers} of "
            f"{len(self.workers)} registered alive ({self.state.worker_cores} core, "
            f"{self.state.worker_memory} each); web UI http://{LOOPBACK}:{self.state.master_ui_port}"
        )


def cluster_dir(state_dir: Path) -> Path:
    """Where the cluster's pid files, logs and work directories live."""
    return Path(state_dir).resolve() / CLUSTER_DIR


def spark_environment() -> dict[str, str]:
    """The environment of Spark's daemons and of ``spark-submit``: Java 17 (or 21) as local mode finds
    it, the pyspark installation as ``SPARK_HOME``, loopback, no real AWS credential, and nothing that
    would pick another Python than the one the job names."""
    env = {k: v for k, v in local_environment(os.environ).items() if k not in _DROPPED_ENV}
    return env | {
        "JAVA_HOME": str(spark_java_home(locate_java())),
        "SPARK_HOME": str(installed_pyspark()),
        "SPARK_LOCAL_IP": LOOPBACK,
        "SPARK_DAEMON_MEMORY": DAEMON_MEMORY,
    }


def master_process(state_dir: Path) -> ServerProcess:
    """The master's pid file and log."""
    return ServerProcess("spark-master", cluster_dir(state_dir), MASTER_CLASS)


def worker_process(state_dir: Path, index: int) -> ServerProcess:
    """Worker ``index``'s (from 1) pid file and log."""
    return ServerProcess(f"spark-worker-{index}", cluster_dir(state_dir), WORKER_CLASS)


def read_state(state_dir: Path) -> ClusterState | None:
    """The recorded cluster, or None."""
    try:
        data = json.loads((cluster_dir(state_dir) / STATE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return ClusterState(**{**data, "worker_ui_ports": tuple(data["worker_ui_ports"])})


def alive_workers(state: ClusterState, timeout_s: float = 2.0) -> int:
    """How many workers the master's web UI (``/json/``) lists as ALIVE; 0 when it does not answer."""
    url = f"http://{LOOPBACK}:{state.master_ui_port}/json/"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            data = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return 0
    return sum(1 for w in data.get("workers", []) if w.get("state") == "ALIVE")


def status(state_dir: Path) -> ClusterStatus:
    """Ask the processes and the master (see the module docstring)."""
    state = read_state(state_dir)
    if state is None:
        return ClusterStatus(None, master_process(state_dir).state(None), (), 0)
    master = master_process(state_dir).state(state.master_port)
    if master == "running" and not port_accepts(state.master_ui_port):
        master = "unhealthy"
    ports = enumerate(state.worker_ui_ports, 1)
    workers = tuple(worker_process(state_dir, i).state(port) for i, port in ports)
    alive = alive_workers(state) if master == "running" else 0
    return ClusterStatus(state, master, workers, alive)


def up(state_dir: Path, *, workers: int = 2, cores: int = 1, memory: str = "1g") -> ClusterStatus:
    """Start the master and ``workers`` workers (``cores`` and ``memory`` each) unless a healthy cluster
    runs already; wait until the master lists every worker alive. A failed start leaves nothing running."""
    current = status(state_dir)
    if current.healthy:
        return current
    down(state_dir)  # whatever half of a cluster is left, and stale pid files
    directory = cluster_dir(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    state = ClusterState(free_port(), free_port(), tuple(free_port() for _ in range(workers)), cores, memory)
    env = spark_environment()
    spark_class = str(installed_pyspark() / "bin" / "spark-class")
    try:
        master = master_process(state_dir)
        pid = master.start(
            [spark_class, MASTER_CLASS, "--host", LOOPBACK, "--port", str(state.master_port),
             "--webui-port", str(state.master_ui_port)], env, cwd=directory,
        )  # fmt: skip
        master.wait_until_answers(pid, f"http://{LOOPBACK}:{state.master_ui_port}/json/", START_TIMEOUT_S)
        for index, ui_port in enumerate(state.worker_ui_ports, 1):
            work = directory / f"work-{index}"
            work.mkdir(exist_ok=True)
            worker_process(state_dir, index).start(
                [spark_class, WORKER_CLASS, "--host", LOOPBACK, "--port", str(free_port()),
                 "--webui-port", str(ui_port), "--cores", str(cores), "--memory", memory,
                 "--work-dir", str(work), state.master_url], env, cwd=directory,
            )  # fmt: skip
        (directory / STATE_FILE).write_text(json.dumps(asdict(state)))
        _wait_for_workers(state_dir, state)
    except BaseException:
        down(state_dir)
        raise
    return status(state_dir)


def _wait_for_workers(state_dir: Path, state: ClusterState) -> None:
    directory = cluster_dir(state_dir)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        current = status(state_dir)
        if current.healthy:
            return
        for index, worker in enumerate(current.workers, 1):
            if worker == "dead":
                process = worker_process(state_dir, index)
                raise ClusterError(f"spark worker {index} exited during start-up; log {process.log_file}: "
                                   f"{process.log_tail()}")
        time.sleep(0.2)
    raise ClusterError(
        f"the master did not list {len(state.worker_ui_ports)} workers alive within {START_TIMEOUT_S:.0f} s "
        f"and the cluster was stopped; logs in {directory}"
    )


def down(state_dir: Path) -> bool:
    """Stop the workers (and any executor they left behind), then the master; True when something ran."""
    directory = cluster_dir(state_dir)
    state = read_state(state_dir)
    count = len(state.worker_ui_ports) if state else 0
    # pid files of workers beyond the recorded count (a start that failed before recording)
    found = (int(p.stem.rsplit("-", 1)[1]) for p in directory.glob("spark-worker-*.pid"))
    indexes = sorted({*range(1, count + 1), *found})
    stopped = False
    for index in indexes:
        worker = worker_process(state_dir, index)
        pid = worker.running_pid()
        children = _descendants(pid) if pid is not None else []
        stopped |= worker.stop()
        for child in children:  # executors normally go with their worker; never leave one behind
            with contextlib.suppress(psutil.NoSuchProcess):
                if child.is_running():
                    terminate(child.pid)
    stopped |= master_process(state_dir).stop()
    (directory / STATE_FILE).unlink(missing_ok=True)
    return stopped


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
