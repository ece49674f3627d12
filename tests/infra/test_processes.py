"""Background server processes: pid files, stale pids, ports, start-up failures (no emulator needed)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import StackError
from infra.processes import (
    LOOPBACK,
    ServerProcess,
    check_port_free,
    free_port,
    http_answers,
    is_alive,
    port_accepts,
    terminate,
)


@pytest.fixture
def listening_socket() -> Iterator[int]:
    """A port on 127.0.0.1 that something listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen()
        yield sock.getsockname()[1]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_free_port_is_free_and_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    assert not port_accepts(port)
    check_port_free(port)


def test_port_in_use_is_named(listening_socket: int) -> None:
    assert port_accepts(listening_socket)
    with pytest.raises(StackError, match=f"port {listening_socket} on 127.0.0.1 is in use"):
        check_port_free(listening_socket)


def test_pid_file_of_a_dead_process_is_stale(tmp_path: Path) -> None:
    process = ServerProcess("srv", tmp_path, marker="anything")
    assert process.state(None) == "stopped"
    process.pid_file.write_text(f"{_dead_pid()}\n")
    assert process.state(None) == "dead"
    assert process.running_pid() is None
    assert process.stop() is False
    assert not process.pid_file.exists()


def test_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    """A pid file naming a live process that is not our server (here: this test) reads as stale."""
    process = ServerProcess("srv", tmp_path, marker="no-such-marker-in-pytest")
    process.pid_file.write_text(f"{os.getpid()}\n")
    assert process.state(None) == "dead"
    assert process.stop() is False
    assert is_alive(os.getpid())


def test_garbage_pid_file_reads_as_no_pid(tmp_path: Path) -> None:
    process = ServerProcess("srv", tmp_path, marker="x")
    process.pid_file.write_text("not a pid\n")
    assert process.read_pid() is None


def test_start_failure_reports_the_log_without_hanging(tmp_path: Path) -> None:
    process = ServerProcess("srv", tmp_path, marker="-c")
    pid = process.start([sys.executable, "-c", "print('boom: cannot bind'); raise SystemExit(3)"], os.environ)
    started = time.monotonic()
    with pytest.raises(StackError, match=r"srv exited during start-up.*boom: cannot bind"):
        process.wait_until_answers(pid, f"http://{LOOPBACK}:{free_port()}/", timeout_s=30)
    assert time.monotonic() - started < 10
    assert not process.pid_file.exists()
    assert not is_alive(pid)


def test_server_that_never_answers_is_stopped_after_the_timeout(tmp_path: Path) -> None:
    process = ServerProcess("srv", tmp_path, marker="sleeper-marker")
    pid = process.start([sys.executable, "-c", "import time; time.sleep(60)", "sleeper-marker"], os.environ)
    with pytest.raises(StackError, match=r"did not answer .* within 1 s and was stopped"):
        process.wait_until_answers(pid, f"http://{LOOPBACK}:{free_port()}/", timeout_s=1)
    assert not is_alive(pid)
    assert not process.pid_file.exists()


def test_terminate_escalates_to_kill() -> None:
    ignores_term = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
        "time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", ignores_term], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    started = time.monotonic()
    terminate(proc.pid, timeout_s=0.5)
    assert not is_alive(proc.pid)
    assert time.monotonic() - started >= 0.5, "SIGTERM was ignored, so only SIGKILL could stop it"
    proc.stdout.close()


@pytest.mark.usefixtures("no_procfs")
def test_a_server_is_found_checked_and_stopped_without_procfs(tmp_path: Path) -> None:
    """macOS has no /proc: the pid file's server must still read as ours, running, and be stopped."""
    process = ServerProcess("srv", tmp_path, marker="sleeper-marker")
    pid = process.start([sys.executable, "-c", "import time; time.sleep(60)", "sleeper-marker"], os.environ)
    assert process.running_pid() == pid
    assert process.state(None) == "running"
    assert process.stop() is True
    assert not is_alive(pid)
    assert process.state(None) == "stopped"


def test_http_answers_only_when_something_speaks_http(listening_socket: int) -> None:
    assert not http_answers(f"http://{LOOPBACK}:{free_port()}/", timeout_s=0.5)
    assert not http_answers(f"http://{LOOPBACK}:{listening_socket}/", timeout_s=0.5)
