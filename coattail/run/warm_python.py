"""A warm Python process that forks the Python processes a warm Spark driver starts for each query.

Each streaming query on a Python data source makes Spark start the streaming source's runner
(``pyspark.sql.streaming.python_streaming_source_runner``, at the first trigger's ``latestOffset``), which
then plans every batch, as a fresh interpreter on the driver: ``<python> -m <module>``, not through
Spark's Python worker daemon. It imports pyspark, pyarrow, pandas, boto3 and our source before it
answers: about a second of a run's first trigger on two cores. The process that creates the data source
(``pyspark.sql.worker.create_data_source``, at ``load()``) goes through the worker daemon, which the
keeper warms; it is forked here too where Spark starts it on its own (``spark.python.use.daemon``
false).

So the keeper of a warm driver (``coattail.run.warm_keeper``) also keeps this server: a process that
imported those modules once (``serve``). The driver's Python executable is a launcher script
(``write_launcher``) that runs ``coattail.run.warm_python_client`` with ``python -I -S`` (a few
milliseconds): for those two modules it hands its arguments, environment, working directory and
standard streams to the server, which forks a child that runs the module as ``__main__`` in that
environment; everything else (the worker daemon, a worker) it executes with the real interpreter, as
it does when the server is not there. The child talks to the JVM as a fresh process would (the module
reads the JVM's port and secret from the environment it was given) and reports its exit code to the
launcher, which exits with it.

The server forks nothing before a request and starts no thread, so a child inherits no lock held by
another thread. It ends when the keeper that started it ends (it checks its parent every second).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import runpy
import signal
import socket
import sys
import traceback
import warnings
from pathlib import Path

from coattail.run.warm_python_client import CODE, FORKED_MODULES, HEADER, read_exactly

PRELOADED = (
    *FORKED_MODULES,
    "pipeline.source.kinesis",
    "pipeline.source.kinesis_reader",
    "pipeline.source.read_ahead",
    "pipeline.source.tape",
    "pipeline.aws",
    "pipeline.parse",
    "pipeline.kpl",
)
"""What the server imports once: the forked modules, the data sources their children unpickle and what
those import when they first plan (lazily, so that an executor's worker does not)."""
SOCKET_FILE = "warm-python.sock"
LAUNCHER_FILE = "warm-python-launcher"
_NOWHERE = "http://127.0.0.1:9"
"""The endpoint of the client ``_preload`` makes and never calls."""
_CLIENT = Path(__file__).resolve().with_name("warm_python_client.py")


def socket_path(state_dir: Path) -> Path:
    """Where the server of ``state_dir``'s warm driver listens."""
    return state_dir / SOCKET_FILE


def write_launcher(state_dir: Path) -> Path:
    """Write the executable Spark runs as its Python (``spark.pyspark.python``'s place): the client,
    with this interpreter and ``state_dir``'s server. Returns its path."""
    launcher = (state_dir / LAUNCHER_FILE).resolve()
    settings = {"SOCKET": str(socket_path(state_dir).resolve()), "PYTHON": sys.executable}
    partial = launcher.with_suffix(".tmp")
    partial.write_text(
        f"#!{sys.executable} -IS\nimport runpy\nrunpy.run_path({str(_CLIENT)!r}, {settings!r}, '__main__')\n"
    )
    partial.chmod(0o700)
    partial.replace(launcher)
    return launcher


def serve(path: Path) -> None:
    """Load what the children use (``_preload``), listen on ``path`` and fork a child per request until
    the parent exits."""
    _preload()
    parent = os.getppid()
    # the kernel reaps the children: the server never waits for one
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # whoever may connect has the server run a pickled function: its owner alone
    umask = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(umask)
    listener.listen(16)
    listener.settimeout(1.0)
    print(f"warm Python ready: pid {os.getpid()}", flush=True)
    while os.getppid() == parent:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        if os.fork() == 0:
            listener.close()
            _child(conn)
        conn.close()
    listener.close()
    path.unlink(missing_ok=True)


def _preload() -> None:
    """Import ``PRELOADED``, and make one Kinesis client: botocore reads the service's model and
    endpoint rules from disk for a session's first client, and a child's reader then finds them in the
    default session's cache. Making a client opens no connection."""
    for module in PRELOADED:
        importlib.import_module(module)
    from pipeline.aws import client
    from pipeline.config import RuntimeSettings

    client("kinesis", RuntimeSettings(aws_endpoint=_NOWHERE))


def _child(conn: socket.socket) -> None:
    """Run the requested module as the launcher's process would have, report its exit code, and exit."""
    code = 1
    try:
        conn.settimeout(None)
        header, fds, _, _ = socket.recv_fds(conn, HEADER.size, 3)
        body = read_exactly(conn, HEADER.unpack(header)[0])
        if body is None:
            raise ConnectionError("the launcher closed the connection before its request was read")
        request = json.loads(body)
        module, *args = request["argv"][1:]
        # the launcher sends only these; anything else on the socket is not Spark asking
        if module not in FORKED_MODULES:
            raise ValueError(f"the warm Python server forks only {', '.join(FORKED_MODULES)}, not {module!r}")
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        conn.sendall(CODE.pack(os.getpid()))
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        sys.argv = [module, *args]
        code = _run(module)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(OSError):
            conn.sendall(CODE.pack(code))
        os._exit(code)


def _run(module: str) -> int:
    """Run ``module`` as ``__main__``; its exit code."""
    # runpy warns that the module was imported already: that is the point of the server
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="runpy")
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
