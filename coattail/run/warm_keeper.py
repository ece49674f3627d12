"""The keeper of a warm Spark driver (``coattail.run.warm_driver``): ``python -m coattail.run.warm_keeper
STATE_DIR``, started detached by ``coattail up --warm-driver``.

It starts the tier's local session (``pipeline.spark.build_session``) from the config ``up`` wrote beside
the record, warms it (the Python data sources looked up, the Python worker daemon started, Spark's first
jobs run), records how to reach it and then holds it: Spark's gateway exits when the stdin this process
gave it closes, i.e. when this process ends. SIGTERM stops the session and ends the process; so does
the JVM's death. It also keeps the warm Python server (``coattail.run.warm_python``) whose launcher is
the driver's Python executable, and ends it when it ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from coattail.run.warm_python import socket_path, write_launcher
from infra.processes import terminate
from pipeline.aws import local_process_environment
from pipeline.config import Config

APP_NAME = "coattail-warm-driver"


def main(state_dir: Path) -> None:
    """Start, warm, record and hold the driver of ``state_dir`` until SIGTERM."""
    import psutil
    from pyspark import SparkContext

    from coattail.run.warm_driver import CONFIG_FILE, STOP_TIMEOUT_S, WarmDriver, fingerprint, write_record
    from pipeline.source import register_sources
    from pipeline.spark import build_session, warm_python_workers

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    config = Config.model_validate_json((state_dir / CONFIG_FILE).read_text())
    with local_process_environment():
        built_for = fingerprint(config)
        # the fingerprint's environment names the real interpreter; Spark's processes run the launcher
        python = _start_warm_python(state_dir)
        os.environ["PYSPARK_PYTHON"] = str(write_launcher(state_dir))
        session, _ = build_session(config, app_name=APP_NAME)
    register_sources(session)
    warm_python_workers(session)
    session.range(1000).selectExpr("id % 7 AS k").groupBy("k").count().collect()
    gateway = SparkContext._gateway
    assert gateway is not None, "build_session started the gateway"
    jvm_pid = int(gateway.jvm.java.lang.ProcessHandle.current().pid())
    write_record(
        state_dir,
        WarmDriver(
            port=gateway.gateway_parameters.port,
            secret=gateway.gateway_parameters.auth_token,
            keeper_pid=psutil.Process().pid,
            jvm_pid=jvm_pid,
            jvm_started=psutil.Process(jvm_pid).create_time(),
            fingerprint=built_for,
            tier=config.tier,
            python_exec=session.sparkContext.pythonExec,
        ),
    )
    print(f"warm Spark driver ready: JVM pid {jvm_pid}", flush=True)
    try:
        # a JVM that dies under the keeper (killed, out of memory) ends it too: a dead driver leaves no
        # process behind, and `coattail status` says it is dead
        while not stopping.wait(1.0):
            if gateway.proc is not None and gateway.proc.poll() is not None:
                print(f"the driver's JVM (pid {jvm_pid}) exited with {gateway.proc.returncode}", flush=True)
                return
        session.stop()
    finally:
        terminate(python.pid, STOP_TIMEOUT_S)


def _start_warm_python(state_dir: Path) -> subprocess.Popen[bytes]:
    """Start the server that forks Spark's per-query Python processes (``coattail.run.warm_python``);
    its output goes to the keeper's log. It loads while the JVM starts."""
    return subprocess.Popen(
        [sys.executable, "-m", "coattail.run.warm_python", str(socket_path(state_dir))],
        stdin=subprocess.DEVNULL,
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
