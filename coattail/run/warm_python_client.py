"""The warm driver's Python executable (``coattail.run.warm_python``): run by the launcher script with
``python -I -S``, so it imports nothing but the standard library and starts in milliseconds.

``<launcher> -m MODULE ARGS...``: when MODULE is one the warm Python server forks and the server
answers, the server's child runs it with this process's arguments, environment, working directory and
standard streams, and this process waits for its exit code (a SIGTERM it receives goes to the child).
Otherwise it becomes the real interpreter with the same arguments. ``SOCKET`` and ``PYTHON`` are given
by the launcher (``runpy.run_path``'s globals).
"""

import json
import os
import signal
import socket
import struct
import sys

FORKED_MODULES = (
    "pyspark.sql.worker.create_data_source",
    "pyspark.sql.streaming.python_streaming_source_runner",
)
HEADER = struct.Struct("!I")
"""The length of the JSON request that follows it (sent with the standard streams' descriptors)."""
CODE = struct.Struct("!i")
"""What the child sends back: its pid once it runs, then its exit code."""


def main(server: str, python: str) -> None:
    """Have ``server`` fork the module, or run ``python`` with this process's arguments."""
    args = sys.argv[1:]
    if args[:1] == ["-m"] and len(args) > 1 and args[1] in FORKED_MODULES:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(server)
        except OSError:  # no server (the keeper ended, or never started one): as without it
            conn.close()
        else:
            sys.exit(_forked(conn, args))
    os.execv(python, [python, *args])


def _forked(conn: socket.socket, args: list[str]) -> int:
    """Send the request and the standard streams, then wait for the child's exit code."""
    request = json.dumps({"argv": args, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
    socket.send_fds(conn, [HEADER.pack(len(request))], [0, 1, 2])
    conn.sendall(request)
    pid = _read_int(conn)
    if pid is None:
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda number, _frame: os.kill(pid, number))
    code = _read_int(conn)
    return 1 if code is None else code


def _read_int(conn: socket.socket) -> int | None:
    """The next integer the child sends; None when it ended without sending it (killed)."""
    data = read_exactly(conn, CODE.size)
    if data is None:
        return None
    value: int = CODE.unpack(data)[0]
    return value


def read_exactly(conn: socket.socket, size: int) -> bytes | None:
    """The next ``size`` bytes from ``conn``; None when it closes first."""
    data = bytearray()
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


if __name__ == "__main__":
    main(globals()["SOCKET"], globals()["PYTHON"])
