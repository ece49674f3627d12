"""A real HTTP server on 127.0.0.1 laid out like the public archives, for tests and benchmarks.

It serves files under a root directory, answers ``Range`` requests, logs every request, and injects
the failures downloads must survive: 5xx answers, a connection dropped mid-body, a required token.
``publish_binance`` and ``publish_tardis`` put a file where the archive would have it.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

_MARKET_PATH = {"spot": "spot", "usdm": "futures/um"}


@dataclass(frozen=True)
class Logged:
    """One request the server answered."""

    path: str
    range: str | None
    status: int


class ArchiveServer:
    """Serves ``root`` at ``url`` until closed (use it as a context manager)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log: list[Logged] = []
        self.fail: dict[str, int] = {}  # path -> how many more requests get a 503
        self.drop: dict[str, int] = {}  # path -> drop the connection after this many body bytes (once)
        self.tokens: dict[str, str] = {}  # path prefix -> the bearer token it requires
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def requests(self, suffix: str = "") -> list[Logged]:
        """The logged requests whose path ends with ``suffix``."""
        with self._lock:
            return [r for r in self.log if r.path.endswith(suffix)]

    def __enter__(self) -> ArchiveServer:
        self._thread.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _record(self, path: str, rng: str | None, status: int) -> None:
        with self._lock:
            self.log.append(Logged(path, rng, status))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the requests are in ``server.log``."""

            def do_GET(self) -> None:
                self._answer(self.path.split("?")[0], self.headers.get("Range"))

            def send_response(self, code: int, message: str | None = None) -> None:
                # logged before the client can see the answer, so a test reading the log never races it
                server._record(self.path.split("?")[0], self.headers.get("Range"), code)
                super().send_response(code, message)

            def _answer(self, path: str, rng: str | None) -> int:
                with server._lock:
                    failing = server.fail.get(path, 0) > 0
                    if failing:
                        server.fail[path] -= 1
                    drop = None if failing else server.drop.pop(path, None)
                if failing:
                    return self._empty(503)
                for prefix, token in server.tokens.items():
                    if path.startswith(prefix) and self.headers.get("Authorization") != f"Bearer {token}":
                        return self._empty(401)
                file = server.root / path.lstrip("/")
                if ".." in path or not file.is_file():
                    return self._empty(404)
                data = file.read_bytes()
                start = 0
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    if start >= len(data):
                        return self._empty(416)
                status = 206 if start else 200
                body = data[start:]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if drop is not None:
                    self.wfile.write(body[:drop])
                    self.wfile.flush()
                    self.close_connection = True
                    return status
                self.wfile.write(body)
                return status

            def _empty(self, status: int) -> int:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return status

        return Handler


def binance_path(market: str, kind: str, symbol: str, period: str) -> str:
    """The URL path of a Binance archive file (daily when ``period`` is a day, else monthly)."""
    freq = "daily" if len(period) == 10 else "monthly"
    return f"/data/{_MARKET_PATH[market]}/{freq}/{kind}/{symbol}/{symbol}-{kind}-{period}.zip"


def publish_binance(root: Path, market: str, kind: str, symbol: str, period: str, zip_file: Path) -> str:
    """Copy ``zip_file`` where Binance keeps that file, with its ``.CHECKSUM``; the URL path."""
    path = binance_path(market, kind, symbol, period)
    dest = root / path.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(zip_file, dest)
    digest = hashlib.sha256(dest.read_bytes()).hexdigest()
    Path(str(dest) + ".CHECKSUM").write_text(f"{digest}  {dest.name}\n")
    return path


def publish_tardis(root: Path, exchange: str, kind: str, symbol: str, day: str, csv_file: Path) -> str:
    """Gzip ``csv_file`` where Tardis keeps that day's dataset; the URL path."""
    path = f"/v1/{exchange}/{kind}/{day.replace('-', '/')}/{symbol}.csv.gz"
    dest = root / path.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_file, "rb") as src, gzip.open(dest, "wb") as out:
        shutil.copyfileobj(src, out)
    return path
