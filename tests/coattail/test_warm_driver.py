"""A warm Spark driver kept by ``coattail up --warm-driver`` (``coattail.run.warm_driver``): real processes
(the keeper, its JVM, ``coattail run`` in subprocesses, moto), no stand-ins. One driver for the module."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from coattail.diff import diff_outputs
from coattail.run.outputs import RunOutputs
from coattail.run.warm_driver import (
    LOCK_FILE,
    WarmDriver,
    attach,
    describe,
    fingerprint,
    read_record,
    record_path,
)
from coattail.run.warm_python import LAUNCHER_FILE
from core.labels import Label
from pipeline.config import Config
from tests.coattail.coattail_tapekit import at, make_tape

COATTAIL = str(Path(sys.executable).parent / "coattail")
TIMEOUT_S = 900
WARM_PYTHON = "coattail.run.warm_python"


@dataclass(frozen=True)
class Warm:
    state_dir: Path
    env: dict[str, str]
    driver: WarmDriver


def _coattail(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COATTAIL, *args], env=env, capture_output=True, text=True, timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warm]:
    state_dir = tmp_path_factory.mktemp("warm") / "state"
    env = {**os.environ, "COATTAIL_STATE_DIR": str(state_dir)}
    up = _coattail("up", "--warm-driver", env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    driver = read_record(state_dir)
    assert driver is not None and driver.alive()
    try:
        yield Warm(state_dir, env, driver)
    finally:
        _coattail("down", env=env)


def _run(warm: Warm, tape: Path, runs: Path) -> tuple[Path, dict[str, Any]]:
    done = _coattail("run", str(tape), "--speed", "max", "--runs", str(runs), env=warm.env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = max(p for p in runs.iterdir() if (p / "run.json").is_file())
    return run_dir, json.loads((run_dir / "run.json").read_text()) | {"stderr": done.stderr}


def _whale_tape(path: Path) -> Path:
    trades = [(1, "BTCUSDT", 1, 50_000.0, 30.0, "buy"), (2, "ETHUSDT", 1, 2_500.0, 300.0, "sell")]
    trades += [(3 + i, "BTCUSDT", 2 + i, 50_000.0 + i, 0.01, "sell") for i in range(20)]
    label = Label(kind="whale", detector="MOD-001", exchange="binance", symbol="BTCUSDT",
                  start_us=at(1), end_us=at(1))  # fmt: skip
    return make_tape(path, trades=trades, labels=[label]).path


def test_a_run_attaches_and_a_second_one_meanwhile_starts_its_own_with_the_same_alerts(
    warm: Warm, tmp_path: Path
) -> None:
    tape = _whale_tape(tmp_path / "tape")
    attached_dir, attached = _run(warm, tape, tmp_path / "runs-warm")
    assert attached["warm_driver"] == {"attached": True, "jvm_pid": warm.driver.jvm_pid}
    # the memory sampler counted the warm JVM, which is no child of the run
    assert attached["memory"]["peak_by_group_mib"]["spark_jvm"] > 100
    assert warm.driver.alive(), "the run left the warm driver running"

    # a run that holds the driver (here: this test) makes the next one start a driver of its own
    with (warm.state_dir / LOCK_FILE).open("wb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        own_dir, own = _run(warm, tape, tmp_path / "runs-own")
    assert own["warm_driver"]["attached"] is False
    assert "busy with another run" in own["warm_driver"]["note"]
    assert "busy with another run" in own["stderr"]

    a = RunOutputs.load(attached_dir / "pipeline")
    b = RunOutputs.load(own_dir / "pipeline")
    assert a.alerts.num_rows > 0
    assert diff_outputs(a, b).empty
    assert warm.driver.alive()


def _with_local(config: Config, **local: Any) -> Config:
    spark = config.spark.model_copy(update={"local": config.spark.local.model_copy(update=local)})
    return config.model_copy(update={"spark": spark})


def _at(config: Config, state_dir: Path) -> Config:
    return config.model_copy(update={"runtime": config.runtime.model_copy(update={"state_dir": state_dir})})


# Attaches in a process of its own, runs a foreachBatch query, has the JVM collect what earlier processes
# left, then needs two more batches; prints the ids its callback objects got.
_ATTACH_AND_STREAM = """
import json, sys, time
from pathlib import Path
from coattail.run.warm_driver import CONFIG_FILE, attach
from pipeline.aws import local_process_environment
from pipeline.config import Config

state, checkpoint = Path(sys.argv[1]), sys.argv[2]
with local_process_environment():
    attached = attach(Config.model_validate_json((state / CONFIG_FILE).read_text()))
    assert not isinstance(attached, str), attached
    spark = attached.session
    seen = []
    query = (
        spark.readStream.format("rate").option("rowsPerSecond", 5).load().writeStream
        .foreachBatch(lambda df, batch_id: seen.append(batch_id)).option("checkpointLocation", checkpoint)
        .start()
    )
    deadline = time.monotonic() + 120
    while len(seen) < 2 and query.exception() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    jvm = spark.sparkContext._jvm
    jvm.System.gc()
    jvm.System.runFinalization()
    wanted = len(seen) + 2
    while len(seen) < wanted and query.exception() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    error = query.exception()
    ids = sorted(k for k in spark.sparkContext._gateway.gateway_property.pool.dict if k.startswith("p"))
    query.stop()
    attached.release()
error = str(error) if error else None
print(json.dumps({"batches": len(seen), "wanted": wanted, "error": error, "ids": ids}))
"""


def test_runs_attached_one_after_another_each_keep_their_callbacks(warm: Warm, tmp_path: Path) -> None:
    """The JVM collecting an earlier run's callback object must not take the next run's with it."""
    results = []
    for i in range(2):
        done = subprocess.run(
            [sys.executable, "-c", _ATTACH_AND_STREAM, str(warm.state_dir), str(tmp_path / f"ck{i}")],
            env=warm.env, capture_output=True, text=True, timeout=TIMEOUT_S,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    for result in results:
        assert result["error"] is None
        assert result["batches"] >= result["wanted"]
    first, second = (set(r["ids"]) for r in results)
    assert first and second and not first & second


def test_the_fingerprint_covers_the_driver_s_settings_not_the_run_s(config: Config) -> None:
    assert fingerprint(_with_local(config, driver_memory="3g")) != fingerprint(config)
    partitions = config.spark.local.shuffle_partitions + 1
    assert fingerprint(_with_local(config, shuffle_partitions=partitions)) == fingerprint(config)


def test_a_driver_built_for_other_settings_is_not_attached(warm: Warm, config: Config) -> None:
    note = attach(_at(_with_local(config, driver_memory="3g"), warm.state_dir))
    assert isinstance(note, str) and note.startswith("the warm Spark driver was started for other settings")


def test_a_dead_driver_is_detected_and_down_forgets_it(warm: Warm, config: Config) -> None:
    jvm = psutil.Process(warm.driver.jvm_pid)
    jvm.send_signal(signal.SIGKILL)
    jvm.wait(30)
    assert not warm.driver.alive()
    note = attach(_at(config, warm.state_dir))
    assert isinstance(note, str) and "is not running" in note
    assert "dead" in (describe(warm.state_dir) or "")
    # the keeper notices its JVM is gone and exits by itself
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not _gone(warm.driver.keeper_pid):
        time.sleep(0.2)
    assert _gone(warm.driver.keeper_pid)
    down = _coattail("down", env=warm.env)
    assert down.returncode == 0 and "no longer running" in down.stdout
    assert not record_path(warm.state_dir).exists()


def test_a_record_from_before_the_warm_python_server_is_still_read(tmp_path: Path) -> None:
    """``down`` after an upgrade must find (and stop) a keeper the previous code started."""
    older = {"port": 1, "secret": "s", "keeper_pid": 2, "jvm_pid": 3, "jvm_started": 4.0, "fingerprint": "f",
             "tier": "small"}  # fmt: skip
    record_path(tmp_path).write_text(json.dumps(older))
    driver = read_record(tmp_path)
    assert driver is not None and driver.jvm_pid == 3 and driver.python_exec is None


def test_down_stops_a_running_driver(tmp_path: Path) -> None:
    env = {**os.environ, "COATTAIL_STATE_DIR": str(tmp_path / "state")}
    up = _coattail("up", "--warm-driver", env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    driver = read_record(tmp_path / "state")
    assert driver is not None and driver.alive()
    status = _coattail("status", env=env)
    assert f"warm Spark driver: running, tier small, JVM pid {driver.jvm_pid}" in status.stdout
    # the driver's Python is the launcher of the keeper's warm Python server (coattail.run.warm_python)
    assert driver.python_exec is not None and Path(driver.python_exec).name == LAUNCHER_FILE
    (server,) = (p.pid for p in psutil.Process(driver.keeper_pid).children() if WARM_PYTHON in p.cmdline())
    down = _coattail("down", env=env)
    assert down.returncode == 0 and f"JVM pid {driver.jvm_pid}" in down.stdout
    pids = (driver.jvm_pid, driver.keeper_pid, server)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(_gone(pid) for pid in pids):
        time.sleep(0.2)
    assert all(_gone(pid) for pid in pids)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # exited, not yet reaped
    except psutil.NoSuchProcess:
        return True
