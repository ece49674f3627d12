"""The warm Python server and its launcher (``coattail.run.warm_python``): real processes and sockets.

The test plays the JVM's side of pyspark's worker protocol: it listens on 127.0.0.1, hands the port and
secret to the launcher in the environment as Spark does, and checks who connects back."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from coattail.run.warm_python import socket_path, write_launcher

RUNNER = "pyspark.sql.streaming.python_streaming_source_runner"
SECRET = "not-so-secret"
TIMEOUT_S = 60


@dataclass(frozen=True)
class Server:
    pid: int
    launcher: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    state_dir = tmp_path_factory.mktemp("warm-python")
    process = subprocess.Popen(
        [sys.executable, "-m", "coattail.run.warm_python", str(socket_path(state_dir))],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("warm Python ready")
        yield Server(process.pid, write_launcher(state_dir))
    finally:
        process.terminate()
        process.wait(TIMEOUT_S)


def _jvm_side() -> tuple[socket.socket, dict[str, str]]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT_S)
    port = listener.getsockname()[1]
    return listener, {
        **os.environ,
        "PYTHON_WORKER_FACTORY_PORT": str(port),
        "PYTHON_WORKER_FACTORY_SECRET": SECRET,
    }


def _accept_worker(listener: socket.socket) -> tuple[socket.socket, int]:
    """Accept the worker as Spark does (its secret, then "ok"); the pid it reports."""
    conn, _ = listener.accept()
    conn.settimeout(TIMEOUT_S)
    stream = conn.makefile("rwb")
    (length,) = struct.unpack("!i", stream.read(4))
    assert stream.read(length).decode() == SECRET
    stream.write(struct.pack("!i", 2) + b"ok")
    stream.flush()
    (pid,) = struct.unpack("!i", stream.read(4))
    return conn, pid


def test_a_planner_runs_in_a_child_of_the_server_with_the_launcher_s_environment(server: Server) -> None:
    listener, env = _jvm_side()
    launcher = subprocess.Popen([str(server.launcher), "-m", RUNNER], env=env)
    conn, pid = _accept_worker(listener)
    # the worker reached the port only its environment named, and it is the server's child, not the launcher
    assert pid != launcher.pid
    assert psutil.Process(pid).ppid() == server.pid
    conn.close()  # the JVM goes away: the runner fails, and the launcher exits with its code
    assert launcher.wait(TIMEOUT_S) != 0


def test_the_child_writes_to_the_launcher_s_streams_and_exits_with_its_code(server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON_WORKER_FACTORY_")}
    done = subprocess.run(
        [str(server.launcher), "-m", RUNNER], env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert done.returncode == 1
    # the runner found no port to reach in the environment it was given, and said so in the server's child
    assert "KeyError: 'PYTHON_WORKER_FACTORY_PORT'" in done.stderr and "warm_python.py" in done.stderr


def test_a_sigterm_to_the_launcher_ends_the_child(server: Server) -> None:
    listener, env = _jvm_side()
    launcher = subprocess.Popen([str(server.launcher), "-m", RUNNER], env=env, stderr=subprocess.DEVNULL)
    conn, pid = _accept_worker(listener)
    child = psutil.Process(pid)
    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(TIMEOUT_S) != 0
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.05)
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    conn.close()


def test_other_modules_run_in_the_real_interpreter(server: Server) -> None:
    done = subprocess.run(
        [str(server.launcher), "-c", "import os, sys; print(sys.executable, os.getppid())"],
        capture_output=True, text=True, timeout=TIMEOUT_S, check=True,
    )  # fmt: skip
    executable, parent = done.stdout.split()
    assert executable == sys.executable and int(parent) == os.getpid()


def test_without_the_server_the_launcher_runs_the_planner_itself(tmp_path: Path) -> None:
    launcher = write_launcher(tmp_path)
    listener, env = _jvm_side()
    process = subprocess.Popen([str(launcher), "-m", RUNNER], env=env, stderr=subprocess.DEVNULL)
    conn, pid = _accept_worker(listener)
    assert pid == process.pid  # the launcher became the interpreter
    conn.close()
    assert process.wait(TIMEOUT_S) != 0


def test_the_server_forks_no_other_module(server: Server, tmp_path: Path) -> None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(str(socket_path(server.launcher.parent)))
    request = json.dumps({"argv": ["-m", "this"], "env": {}, "cwd": str(tmp_path)})
    with conn, open(os.devnull, "w") as quiet:
        socket.send_fds(conn, [struct.pack("!I", len(request))], [0, quiet.fileno(), quiet.fileno()])
        conn.sendall(request.encode())
        conn.settimeout(TIMEOUT_S)
        reply = b""
        while chunk := conn.recv(8):
            reply += chunk
    # no pid is sent, only the child's exit code: it refused before running anything
    assert struct.unpack("!i", reply) == (1,)
