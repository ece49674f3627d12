"""The stack's lifecycle with real background emulator processes: up, provision, status, down, failures."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from core.errors import StackError, UnsafeEndpointError
from infra import emulator, stack
from infra.processes import LOOPBACK, free_port, is_alive, port_accepts
from pipeline.aws import client
from pipeline.config import Config, ConfigLoader, RuntimeSettings
from pipeline.tables import all_tables

pytestmark = pytest.mark.integration
TABLES = tuple(f"coattail.{t.name}" for t in all_tables(ConfigLoader().load("small", env={})))
"""The Iceberg tables ``up`` creates for the small tier (in the lite catalog under the state dir)."""
RESOURCES = 5 + len(TABLES)


def _config(state_dir: Path, **runtime: Any) -> Config:
    base = ConfigLoader().load("small", env={})
    return base.model_copy(update={"runtime": RuntimeSettings(state_dir=state_dir, **runtime)})


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """A state directory whose stack is always taken down, even when a test fails."""
    directory = tmp_path / "state"
    yield directory
    stack.down(directory)


def _recorded_endpoint(state_dir: Path) -> str | None:
    """The endpoint ``stack.json`` gives the other commands (level 3 of ``infra.resolve``), if healthy."""
    runtime = stack.current_runtime(RuntimeSettings(state_dir=state_dir))
    return runtime.aws_endpoint if runtime else None


def _moto_pid(state_dir: Path) -> int:
    pid = emulator.server_process("moto", state_dir).read_pid()
    assert pid is not None
    return pid


def _wait_dead(pid: int) -> None:
    deadline = time.monotonic() + 10
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_alive(pid)


def test_up_provision_twice_status_down(state_dir: Path) -> None:
    config = _config(state_dir)
    handle = stack.up(config)
    assert handle.started
    endpoint = handle.runtime.aws_endpoint
    assert endpoint is not None and endpoint.startswith(f"http://{LOOPBACK}:")
    assert [r.state for r in handle.resources] == ["created"] * RESOURCES
    pid = _moto_pid(state_dir)
    assert (state_dir / "moto.log").is_file()

    again = stack.up(config)
    assert not again.started
    assert again.runtime.aws_endpoint == endpoint
    assert [r.state for r in again.resources] == ["exists"] * RESOURCES
    assert _moto_pid(state_dir) == pid

    report = stack.status(config.runtime)
    assert report.healthy
    assert [(p.kind, p.state, p.pid) for p in report.processes] == [("moto", "running", pid)]
    names = {r.name for r in report.resources}
    assert names == {
        "coattail-events",
        "coattail-alerts",
        "coattail-warehouse",
        "coattail-checkpoints",
        "coattail",
        *TABLES,
    }
    assert report.summary() == "up: tier small, profile lite"
    assert _recorded_endpoint(state_dir) == endpoint

    assert stack.down(state_dir) == [f"stopped moto (pid {pid})"]
    _wait_dead(pid)
    assert not (state_dir / "moto.pid").exists()
    assert not (state_dir / "stack.json").exists()
    assert _recorded_endpoint(state_dir) is None
    down_report = stack.status(config.runtime)
    assert (down_report.state, down_report.processes) == (None, [])
    assert down_report.summary().startswith("down")
    assert stack.down(state_dir) == []


@pytest.mark.usefixtures("no_procfs")
def test_down_stops_the_emulator_up_started_without_procfs(state_dir: Path) -> None:
    """As on macOS: no /proc to read, yet ``down`` finds the emulator ``up`` started and stops it."""
    handle = stack.up(_config(state_dir))
    assert handle.started
    pid = _moto_pid(state_dir)
    assert stack.status(RuntimeSettings(state_dir=state_dir), resources=False).healthy
    assert stack.down(state_dir) == [f"stopped moto (pid {pid})"]
    assert not is_alive(pid)
    assert not (state_dir / "moto.pid").exists()


def _moto_children() -> set[int]:
    """The live moto servers this test process started."""
    found = set()
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.NoSuchProcess):
            if "moto.server" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                found.add(child.pid)
    return found


def test_two_ups_racing_on_one_state_dir_start_one_emulator(state_dir: Path) -> None:
    config = _config(state_dir)
    before = _moto_children()
    barrier = threading.Barrier(2)
    handles: list[stack.StackHandle] = []
    errors: list[BaseException] = []

    def bring_up() -> None:
        barrier.wait()
        try:
            handles.append(stack.up(config))
        except BaseException as e:  # reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=bring_up) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(h.started for h in handles) == [False, True]
    assert len({h.runtime.aws_endpoint for h in handles}) == 1
    assert _moto_children() - before == {_moto_pid(state_dir)}


def test_up_waiting_for_another_holder_gives_up_with_a_clear_error(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack, "LOCK_TIMEOUT_S", 0.3)
    with stack._locked(state_dir), pytest.raises(StackError, match=r"another `coattail up`.*stack\.lock"):
        stack.up(_config(state_dir))
    assert not (state_dir / "moto.pid").exists()


def test_emulator_killed_under_us_is_reported_and_recovered(state_dir: Path) -> None:
    config = _config(state_dir)
    assert stack.up(config).notes == ()
    pid = _moto_pid(state_dir)
    os.kill(pid, signal.SIGKILL)
    _wait_dead(pid)

    report = stack.status(config.runtime)
    assert not report.healthy
    assert [(p.kind, p.state) for p in report.processes] == [("moto", "dead")]
    assert "killed or crashed" in report.summary()
    assert report.resources == []
    assert _recorded_endpoint(state_dir) is None

    steps: list[str] = []
    recovered = stack.up(config, step=steps.append)
    assert recovered.started
    assert any("clearing" in s for s in steps)
    # the emulator's resources died with it; the lite catalog's tables live on under the state dir
    assert [r.state for r in recovered.resources] == ["created"] * 5 + ["exists"] * len(TABLES)
    assert _moto_pid(state_dir) != pid
    # and says so: the old data is gone, old checkpoints no longer match, the lite tables survived
    (note,) = recovered.notes
    assert f"moto (pid {pid}" in note and "are gone" in note and "fresh --checkpoint" in note
    assert "storage.namespace" in note
    assert stack.up(config).notes == ()


def test_stale_pid_file_is_reported_and_cleared(state_dir: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    state_dir.mkdir(parents=True)
    (state_dir / "moto.pid").write_text(f"{gone.pid}\n")

    report = stack.status(RuntimeSettings(state_dir=state_dir))
    assert [(p.kind, p.state) for p in report.processes] == [("moto", "dead")]
    assert "stale pid file" in report.summary()
    handle = stack.up(_config(state_dir))
    assert handle.started
    assert _moto_pid(state_dir) != gone.pid


def test_pid_file_naming_a_foreign_process_never_kills_it(state_dir: Path) -> None:
    state_dir.mkdir(parents=True)
    (state_dir / "moto.pid").write_text(f"{os.getpid()}\n")
    assert stack.down(state_dir) == [f"removed a stale pid file for moto (pid {os.getpid()} was not running)"]
    assert is_alive(os.getpid())


def test_port_in_use_is_a_clear_error_and_leaves_nothing(state_dir: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen()
        port = sock.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(StackError, match=f"port {port} on 127.0.0.1 is in use"):
            stack.up(_config(state_dir), port=port)
        assert time.monotonic() - started < 5
    assert not (state_dir / "moto.pid").exists()
    assert not (state_dir / "stack.json").exists()


def test_second_emulator_in_the_same_state_dir_is_refused(state_dir: Path) -> None:
    first = emulator.start("moto", state_dir)
    with pytest.raises(StackError, match=f"moto is already running \\(pid {first.pid}"):
        emulator.start("moto", state_dir)


def test_failed_provisioning_stops_what_it_started(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise StackError("provisioning refused")

    monkeypatch.setattr(stack, "provision", refuse)
    port = free_port()
    with pytest.raises(StackError, match="provisioning refused"):
        stack.up(_config(state_dir), port=port)
    assert not port_accepts(port), "the emulator started for the failed up must be gone"
    assert not (state_dir / "moto.pid").exists()
    assert not (state_dir / "stack.json").exists()


def test_tier_with_other_shards_against_a_running_stack_is_refused(state_dir: Path) -> None:
    stack.up(_config(state_dir))
    medium = (
        ConfigLoader()
        .load("medium", env={})
        .model_copy(update={"runtime": RuntimeSettings(state_dir=state_dir)})
    )
    with pytest.raises(StackError, match=r"has 2 open shards but the tier wants 4.*coattail down"):
        stack.up(medium)
    assert stack.status(RuntimeSettings(state_dir=state_dir)).healthy, "a refused up leaves the stack alone"


def test_ensure_up_release_stops_only_what_it_started(state_dir: Path) -> None:
    config = _config(state_dir)
    fresh = stack.ensure_up(config)
    assert fresh.started
    pid = _moto_pid(state_dir)
    fresh.release()
    _wait_dead(pid)

    stack.up(config)
    reused = stack.ensure_up(config)
    assert not reused.started
    reused.release()
    assert stack.status(config.runtime).healthy


_RUN = """
import sys
from pathlib import Path
from pipeline.config import ConfigLoader, RuntimeSettings
from infra import stack
base = ConfigLoader().load("small", env={})
config = base.model_copy(update={"runtime": RuntimeSettings(state_dir=Path(sys.argv[1]))})
handle = stack.ensure_up(config)
print("started" if handle.started else "reused", flush=True)
sys.stdin.readline()
print(handle.release(), flush=True)
"""


def _other_run(state_dir: Path) -> subprocess.Popen[str]:
    """Another `coattail run`'s hold on the stack: a process that takes it with ``ensure_up`` and
    releases it when told (a line on its stdin)."""
    run = subprocess.Popen([sys.executable, "-c", _RUN, str(state_dir)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    assert run.stdout is not None
    return run


def test_a_run_started_stack_stops_with_the_last_run_using_it(state_dir: Path) -> None:
    config = _config(state_dir)
    first = stack.ensure_up(config)
    assert first.started
    pid = _moto_pid(state_dir)
    other = _other_run(state_dir)
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "reused"
        assert "1 other run" in first.release()  # the run that started it finishes first
        assert stack.status(config.runtime, resources=False).healthy
        out, _ = other.communicate("done\n", timeout=60)
    finally:
        other.kill()
    assert out.startswith("stopped")
    _wait_dead(pid)


def test_a_killed_runs_lease_does_not_keep_the_stack_up(state_dir: Path) -> None:
    config = _config(state_dir)
    first = stack.ensure_up(config)
    pid = _moto_pid(state_dir)
    other = _other_run(state_dir)
    assert other.stdout is not None and other.stdout.readline().strip() == "reused"
    other.kill()  # no release: its lease stays behind
    other.wait(timeout=30)
    assert len(list((state_dir / stack.LEASES_DIR).iterdir())) == 2
    assert first.release().startswith("stopped")
    _wait_dead(pid)
    assert not (state_dir / stack.LEASES_DIR).exists()


def test_up_takes_over_a_stack_a_run_started(state_dir: Path) -> None:
    config = _config(state_dir)
    run = stack.ensure_up(config)
    assert "a run started it" in stack.status(config.runtime, resources=False).summary()
    again = stack.up(config)  # `coattail up` while the run goes on: the user now keeps the stack
    assert not again.started and again.lease is None
    assert "coattail down" in run.release()
    assert stack.status(config.runtime, resources=False).healthy


def test_current_runtime_points_clients_at_the_stack(state_dir: Path) -> None:
    config = _config(state_dir)
    stack.up(config)
    runtime = stack.current_runtime(RuntimeSettings(state_dir=state_dir))
    assert runtime is not None
    streams = client("kinesis", runtime).list_streams()["StreamNames"]
    assert streams == ["coattail-events"]


def test_external_endpoint_is_provisioned_not_started(state_dir: Path, tmp_path: Path) -> None:
    """Like docker-compose.yml: one endpoint for most services, another (moto) for Glue."""
    main = emulator.start("moto", tmp_path / "main")
    glue = emulator.start("moto", tmp_path / "glue")
    try:
        config = _config(state_dir, aws_endpoint=main.endpoint, service_endpoints={"glue": glue.endpoint})
        handle = stack.up(config)
        assert not handle.started
        assert [r.state for r in handle.resources] == ["created"] * RESOURCES
        assert not (state_dir / "moto.pid").exists()
        runtime = RuntimeSettings(aws_endpoint=main.endpoint)
        assert client("glue", runtime).get_databases()["DatabaseList"] == []
        names = client("glue", handle.runtime).get_databases()["DatabaseList"]
        assert [d["Name"] for d in names] == ["coattail"]

        report = stack.status(RuntimeSettings(state_dir=state_dir))
        assert [(p.kind, p.state) for p in report.processes] == [("external", "running")]
        assert [r.state for r in report.resources] == ["exists"] * RESOURCES
        assert stack.down(state_dir) == [f"forgot the external stack recorded in {state_dir / 'stack.json'}"]
        assert is_alive(main.pid)
    finally:
        emulator.server_process("moto", tmp_path / "main").stop()
        emulator.server_process("moto", tmp_path / "glue").stop()


def test_non_local_endpoint_is_refused_before_anything_starts(state_dir: Path) -> None:
    config = _config(state_dir, aws_endpoint="https://kinesis.us-east-1.amazonaws.com")
    with pytest.raises(UnsafeEndpointError):
        stack.up(config)
    with pytest.raises(UnsafeEndpointError):
        stack.up(_config(state_dir, profile="aws"))
    assert not state_dir.exists()


def test_corrupt_state_file_is_named_and_removed_by_down(state_dir: Path) -> None:
    state_dir.mkdir(parents=True)
    (state_dir / "stack.json").write_text("{not json")
    with pytest.raises(StackError, match=r"stack\.json is not a stack state file.*coattail down"):
        stack.status(RuntimeSettings(state_dir=state_dir))
    stack.down(state_dir)
    assert stack.status(RuntimeSettings(state_dir=state_dir)).state is None


def test_recorded_external_stack_is_reused_and_local_one_blocks_another(
    state_dir: Path, tmp_path: Path
) -> None:
    external = emulator.start("moto", tmp_path / "compose")
    try:
        stack.up(_config(state_dir, aws_endpoint=external.endpoint))
        reused = stack.ensure_up(_config(state_dir))  # no endpoint given: the recorded one is found
        assert not reused.started
        assert reused.runtime.aws_endpoint == external.endpoint
        with pytest.raises(StackError, match="coattail down"):
            stack.up(_config(state_dir), kinesis="kinesis-mock")
    finally:
        emulator.server_process("moto", tmp_path / "compose").stop()
    stack.down(state_dir)
    stack.up(_config(state_dir))
    with pytest.raises(StackError, match="a local stack is up"):
        stack.up(_config(state_dir, aws_endpoint="http://127.0.0.1:1"))
