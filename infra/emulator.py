"""The emulators the local stack runs as background processes on 127.0.0.1.

- ``moto``: moto's server mode (``python -m infra.moto.server``: moto's own, with two costs of its GetRecords
  answers removed): Kinesis, DynamoDB, S3 and Glue; the default.
- ``kinesis-mock``: the ``kinesis-local`` npm package (the Kinesis engine inside LocalStack), opt-in, for
  Kinesis only; it needs Node and ``make kinesis-mock`` (a project-local ``node_modules``). It hard-codes
  0.0.0.0 as its listen address, so it is started with ``loopback.js`` preloaded, which forces every
  socket it opens onto 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.errors import StackError
from infra.processes import LOOPBACK, ServerProcess, check_port_free, free_port, port_accepts
from pipeline.aws import local_environment

EmulatorKind = Literal["moto", "kinesis-mock"]
KINESIS_LOCAL_VERSION = "0.6.2"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK_PRELOAD = Path(__file__).resolve().parent / "loopback.js"
_AUTO_PORT_ATTEMPTS = 3


@dataclass(frozen=True)
class Emulator:
    """A started emulator: which one, its process record, and where it answers."""

    kind: EmulatorKind
    pid: int
    port: int

    @property
    def endpoint(self) -> str:
        """The endpoint URL clients use."""
        return f"http://{LOOPBACK}:{self.port}"


def server_process(kind: EmulatorKind, state_dir: Path) -> ServerProcess:
    """The pid file, log and command-line marker of one emulator kind under ``state_dir``."""
    marker = "moto.server" if kind == "moto" else "kinesis-local"
    return ServerProcess(name=kind, state_dir=state_dir, marker=marker)


def kinesis_local_main(roots: tuple[Path, ...] | None = None) -> Path:
    """The installed ``kinesis-local`` entry point; a clear error says how to install it when missing."""
    for root in roots or (Path.cwd(), PROJECT_ROOT):
        main = root / "node_modules" / "kinesis-local" / "main.js"
        if main.is_file():
            return main
    raise StackError(
        f"kinesis-mock is not installed: run `make kinesis-mock` (npm install of "
        f"kinesis-local@{KINESIS_LOCAL_VERSION} into ./node_modules), or use the default --kinesis moto"
    )


def _moto_command(port: int, _region: str) -> tuple[list[str], dict[str, str]]:
    command = [sys.executable, "-m", "infra.moto.server", "-H", LOOPBACK, "-p", str(port)]
    return command, local_environment(os.environ)


def _kinesis_mock_command(port: int, region: str) -> tuple[list[str], dict[str, str]]:
    node = shutil.which("node")
    if node is None:
        raise StackError("kinesis-mock needs Node.js (`node` on PATH): apt-get install nodejs npm")
    main = kinesis_local_main()
    env = {
        **local_environment(os.environ),
        "KINESIS_MOCK_PLAIN_PORT": str(port),
        # The TLS listener cannot be switched off; give it its own free port so it never collides.
        "KINESIS_MOCK_TLS_PORT": str(free_port()),
        "KINESIS_MOCK_CERT_PATH": str(main.parent / "server.json"),
        "AWS_REGION": region,
        "LOG_LEVEL": "WARN",
    }
    return [node, "--require", str(LOOPBACK_PRELOAD), str(main)], env


_COMMANDS: Mapping[EmulatorKind, Callable[[int, str], tuple[list[str], dict[str, str]]]] = {
    "moto": _moto_command,
    "kinesis-mock": _kinesis_mock_command,
}


def start(
    kind: EmulatorKind,
    state_dir: Path,
    *,
    port: int | None = None,
    region: str = "us-east-1",
    timeout_s: float = 60.0,
) -> Emulator:
    """Start one emulator in the background and wait until it answers.

    ``port=None`` picks a free port (retrying when another process grabs it first); an explicit port
    that is taken is an error naming it. A live emulator of this kind under ``state_dir`` is an error
    too (one stack per state directory); a stale pid file from a crashed one is cleared.
    """
    process = server_process(kind, state_dir)
    running = process.running_pid()
    if running is not None:
        raise StackError(
            f"{kind} is already running (pid {running}, pid file {process.pid_file}); "
            "`coattail down` stops it"
        )
    process.pid_file.unlink(missing_ok=True)
    attempt = 0
    while True:
        attempt += 1
        chosen = port if port is not None else free_port()
        if port is not None:
            check_port_free(port)
        command, env = _COMMANDS[kind](chosen, region)
        pid = process.start(command, env)
        try:
            process.wait_until_answers(pid, f"http://{LOOPBACK}:{chosen}/", timeout_s)
        except StackError:
            # A free port can be taken between choosing it and the server binding it: try another.
            lost_race = port is None and attempt < _AUTO_PORT_ATTEMPTS and port_accepts(chosen)
            if not lost_race:
                raise
            continue
        return Emulator(kind=kind, pid=pid, port=chosen)
