"""Background server processes that outlive the command that started them: pid files, ports, health.

A server is started detached (its own session, output to a log file), its pid written to a pid file, and
the caller waits until it answers HTTP. Liveness is judged from the pid file *and* the process's command
line, so a pid reused by an unrelated process after a crash reads as stale rather than as our server.
Processes are found, checked and stopped through psutil, never by reading ``/proc``: the same code
must stop the stack on macOS, which has no procfs.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psutil

from core.errors import StackError

LOOPBACK = "127.0.0.1"
ProcessState = Literal["running", "stopped", "dead", "unhealthy", "unchecked"]
CMDLINE_READS = 10
CMDLINE_RETRY_S = 0.02


@dataclass(frozen=True)
class ServerProcess:
    """One background server: its name, where its pid file and log live, and a command-line marker."""

    name: str
    state_dir: Path
    marker: str

    @property
    def pid_file(self) -> Path:
        """``<state_dir>/<name>.pid``."""
        return self.state_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        """``<state_dir>/<name>.log``."""
        return self.state_dir / f"{self.name}.log"

    def read_pid(self) -> int | None:
        """The pid in the pid file, or None when there is no (readable) pid file."""
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def running_pid(self) -> int | None:
        """The pid when the pid file names a live process that is this server, else None."""
        pid = self.read_pid()
        if pid is None or not is_alive(pid):
            return None
        for _ in range(CMDLINE_READS):
            cmdline = _cmdline(pid)
            if cmdline:
                return pid if self.marker in cmdline else None
            # a process in the middle of an exec (spark-class becoming its JVM) reads an empty command
            # line for a moment: that is not a dead server
            time.sleep(CMDLINE_RETRY_S)
        return None

    def state(self, port: int | None) -> ProcessState:
        """``running``; ``stopped`` (no pid file); ``dead`` (a stale pid file: the server was killed or
        crashed); ``unhealthy`` (alive but its port does not accept connections)."""
        if self.read_pid() is None:
            return "stopped"
        if self.running_pid() is None:
            return "dead"
        if port is not None and not port_accepts(port):
            return "unhealthy"
        return "running"

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the log, for error messages."""
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:]) or "(empty log)"

    def start(self, command: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> int:
        """Start the server detached, write its pid file, return the pid."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            try:
                proc = subprocess.Popen(
                    list(command),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=dict(env),
                    cwd=cwd,
                    start_new_session=True,  # Ctrl-C in the user's terminal must not take the stack down
                )
            except OSError as e:
                raise StackError(f"cannot start {self.name} ({command[0]}): {e}") from e
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc.pid

    def wait_until_answers(self, pid: int, url: str, timeout_s: float) -> None:
        """Poll ``url`` until it gives any HTTP answer; fail fast when the process exits instead."""
        try:
            proc: psutil.Process | None = psutil.Process(pid)
        except psutil.NoSuchProcess:
            proc = None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc is None or _exited(proc):
                self.pid_file.unlink(missing_ok=True)
                raise StackError(
                    f"{self.name} exited during start-up; log {self.log_file}: {self.log_tail()}"
                )
            if http_answers(url):
                return
            time.sleep(0.1)
        self.stop()
        raise StackError(
            f"{self.name} did not answer on {url} within {timeout_s:.0f} s and was stopped; "
            f"log {self.log_file}: {self.log_tail()}"
        )

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop the server named by the pid file (TERM, then KILL); remove the pid file.

        Returns True when a live server was stopped, False when there was none (or only a stale pid file).
        A pid that now belongs to another program is never signalled.
        """
        pid = self.running_pid()
        if pid is not None:
            terminate(pid, timeout_s)
        self.pid_file.unlink(missing_ok=True)
        return pid is not None


def terminate(pid: int, timeout_s: float = 10.0) -> None:
    """SIGTERM ``pid``, wait up to ``timeout_s``, then SIGKILL; returns once the process is gone."""
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    for send, wait_s in ((proc.terminate, timeout_s), (proc.kill, 5.0)):
        with contextlib.suppress(psutil.NoSuchProcess):
            send()  # psutil refuses to signal a pid that was reused since ``proc`` was looked up
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if _exited(proc):
                return
            time.sleep(0.05)
    raise StackError(f"process {pid} survived SIGKILL; stop it by hand (kill -9 {pid})")


def is_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (zombies, which only wait to be reaped, count as dead)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # also psutil.ZombieProcess
        return False
    except psutil.AccessDenied:
        return True  # another user's process: it exists


def _exited(proc: psutil.Process) -> bool:
    """Whether ``proc`` has exited (or its pid now names another process); reaps it when it is our own
    child, so it does not linger as a zombie."""
    try:
        proc.wait(timeout=0)
        return True
    except psutil.TimeoutExpired:
        pass
    except psutil.NoSuchProcess:
        return True
    try:
        # is_running compares the start time too, so a pid reused meanwhile reads as exited
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return False


def _cmdline(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return ""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def port_accepts(port: int, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def check_port_free(port: int) -> None:
    """Raise ``StackError`` naming the port when it cannot be bound on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError as e:
            raise StackError(
                f"port {port} on {LOOPBACK} is in use by another process; pass a different --port, "
                "or omit --port to pick a free one"
            ) from e


def http_answers(url: str, timeout_s: float = 1.0) -> bool:
    """Whether ``url`` gives any HTTP response (an error status still means the server is up)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False
