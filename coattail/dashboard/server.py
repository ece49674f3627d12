"""The dashboard's HTTP server on 127.0.0.1: the built files of ``dashboard/``, the alert API under
``/api`` (the production handlers, ``coattail.api_server``), and the harness-only routes under
``/harness`` (run progress, market data, data-quality counts: not part of production's API)."""

from __future__ import annotations

import json
import mimetypes
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import polars as pl

from coattail.api_server import LOOPBACK, answer, send
from coattail.dashboard.live import LiveRun
from coattail.dashboard.market import market, tape_symbols
from coattail.run.judge import run_prices
from core.errors import CoattailError
from pipeline.api.app import AlertApi
from pipeline.config import Config
from pipeline.tables import TableDef

DIST: Final = Path(__file__).resolve().parents[2] / "dashboard" / "dist"
"""Where ``make install`` (``npm run build`` in ``dashboard/``) puts the built dashboard."""
API_PREFIX: Final = "/api"
HARNESS_PREFIX: Final = "/harness"
NOT_BUILT: Final = (
    "<!doctype html><title>coattail dashboard</title><h1>The dashboard is not built</h1>"
    "<p>Run <code>make install</code> (it needs Node.js 20.19+ and npm) or "
    "<code>npm ci &amp;&amp; npm run build</code> in <code>dashboard/</code>. The alert API is served "
    "under <a href='api/health'>/api</a> all the same.</p>"
)


def alert_api(config: Config) -> AlertApi:
    """The production handlers over ``config``'s alerts table and stream."""
    from pipeline.api.store import AlertStore, ApiSettings

    settings = ApiSettings(
        alerts_table=config.dynamodb.alerts_table, stream=config.kinesis.stream, runtime=config.runtime
    )
    return AlertApi(AlertStore.from_settings(settings))


@dataclass
class Backend:
    """Where the dashboard's data comes from: the alert API over ``config`` (or the live run's config,
    once the run has provisioned it) and, for a run, its directory (tapes, prices, data quality)."""

    config: Config | None = None
    run_path: Path | None = None
    live: LiveRun | None = None
    _api: AlertApi | None = field(default=None, init=False)
    _markets: dict[str, dict[str, Any]] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def _current(self) -> tuple[Config | None, Path | None]:
        if self.live is not None:
            return self.live.config, self.live.run_path
        return self.config, self.run_path

    def api(self) -> AlertApi | None:
        """The alert API, or None while a live run has not provisioned its table yet."""
        with self._lock:
            if self._api is None:
                config, _ = self._current()
                if config is not None:
                    self._api = alert_api(config)
            return self._api

    def run_status(self) -> dict[str, Any] | None:
        """The live run's progress; None when no run drives the dashboard."""
        return None if self.live is None else self.live.snapshot()

    def _run(self) -> Path | None:
        return self._current()[1]

    def _tapes(self, run: Path) -> list[Path]:
        return [Path(p) for p in json.loads((run / "run.json").read_text())["tapes"]]

    def symbols(self) -> list[str] | None:
        """The replayed tapes' symbols; None without a run."""
        run = self._run()
        return None if run is None else tape_symbols(self._tapes(run))

    def market(self, symbol: str) -> dict[str, Any] | None:
        """``symbol``'s market series (computed once per symbol); None without a run."""
        run = self._run()
        if run is None:
            return None
        with self._lock:
            cached = self._markets.get(symbol)
        if cached is None:
            tapes = self._tapes(run)
            cached = market(tapes, run_prices(run, tapes), symbol)
            with self._lock:
                self._markets[symbol] = cached
        return cached

    def _table(self, table: TableDef) -> pl.DataFrame | None:
        """``table``'s rows: the finished run's captured copy, or the live run's Iceberg table as it
        grows; None without a run."""
        config, run = self._current()
        if run is None:
            return None
        captured = run / "pipeline" / f"{table.name}.parquet"
        if captured.is_file():
            return pl.read_parquet(captured)
        if config is None:
            from coattail.run.outputs import polars_columns

            return pl.DataFrame(schema=polars_columns(table))
        from coattail.run.orchestrate import read_table
        from pipeline.sinks.iceberg import load_catalog

        catalog = load_catalog(config.runtime, config.storage.warehouse_bucket)
        return pl.DataFrame(read_table(catalog, config, table))

    def _run_config(self) -> Config | None:
        """The config the run ran with (the live run's, or the run directory's ``config.json``)."""
        if self.live is not None:
            return self.live.config
        recorded = None if self.run_path is None else self.run_path / "config.json"
        if recorded is None or not recorded.is_file():
            return None
        return Config.model_validate(json.loads(recorded.read_text()))

    def dq(self) -> dict[str, Any] | None:
        """Data-quality counts by reason (MOD-004's ``dq_metrics``); None without a run."""
        from pipeline.detectors.data_quality import DQ_METRICS

        dq = self._table(DQ_METRICS)
        if dq is None:
            return None
        counts = dq.group_by("reason").agg(pl.col("count").sum()).sort("reason")
        return {"by_reason": dict(zip(counts["reason"].to_list(), counts["count"].to_list(), strict=True))}

    def scorecard(self) -> dict[str, Any] | None:
        """MOD-011's scorecard of the run (``coattail.dashboard.alpha``); None without a run or when the
        run's tier has no MOD-011."""
        from coattail.dashboard.alpha import scorecard
        from pipeline.detectors.alpha_scoring import ALPHA_SCORES, AlphaScoring, AlphaSettings

        config = self._run_config()
        if config is None or not config.enabled(AlphaScoring.module_id):
            return None
        scores = self._table(ALPHA_SCORES)
        return None if scores is None else scorecard(scores, config.settings_of(AlphaSettings))


def _json(handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    payload = json.dumps(body, allow_nan=False).encode()
    send(handler, status, {"Content-Type": "application/json", "Cache-Control": "no-store"}, payload)


def _error(handler: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
    _json(handler, status, {"error": {"code": code, "message": message}})


def make_dashboard_server(backend: Backend, port: int = 0, dist: Path = DIST) -> ThreadingHTTPServer:
    """A server on 127.0.0.1:``port`` (0: a free one) for the dashboard in ``dist`` over ``backend``."""
    root = dist.resolve()
    harness: dict[str, Callable[[dict[str, list[str]]], Any]] = {
        "/run": lambda q: backend.run_status(),
        "/symbols": lambda q: None if (s := backend.symbols()) is None else {"symbols": s},
        "/market": lambda q: backend.market(q.get("symbol", [""])[0]),
        "/dq": lambda q: backend.dq(),
        "/scorecard": lambda q: backend.scorecard(),
    }

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            path = parts.path
            try:
                if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
                    self._api(self.path[len(API_PREFIX) :] or "/")
                elif path.startswith(HARNESS_PREFIX + "/"):
                    self._harness(path[len(HARNESS_PREFIX) :], parse_qs(parts.query))
                elif path == "/config.json":
                    _json(self, 200, {"apiBase": "./api", "harnessBase": "./harness"})
                else:
                    self._static(path)
            except CoattailError as e:
                _error(self, 500, "harness_error", str(e))

        def _api(self, target: str) -> None:
            api = backend.api()
            if api is not None:
                answer(self, api, target)
            elif urlsplit(target).path == "/alerts":
                # a live run before its table exists has written no alert: the true answer is none
                _json(self, 200, {"alerts": [], "count": 0, "next_cursor": None})
            else:
                _error(self, 503, "starting", "the run has not provisioned its alerts table yet")

        def _harness(self, route: str, query: dict[str, list[str]]) -> None:
            handler = harness.get(route)
            if handler is None:
                _error(self, 404, "not_found", f"no harness route {route} (routes: {', '.join(harness)})")
            else:  # null when there is nothing to show (no live run, no run directory)
                _json(self, 200, handler(query))

        def _static(self, path: str) -> None:
            if not (root / "index.html").is_file():
                send(self, 200, {"Content-Type": "text/html; charset=utf-8"}, NOT_BUILT.encode())
                return
            target = (root / path.lstrip("/")).resolve()
            if path in ("", "/"):
                target = root / "index.html"
            if not target.is_relative_to(root) or not target.is_file():
                _error(self, 404, "not_found", f"no file {path}")
                return
            kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            # hashed asset names never change content; index.html must be read again to find new ones
            cache = "public, max-age=31536000, immutable" if "assets" in target.parts else "no-cache"
            send(self, 200, {"Content-Type": kind, "Cache-Control": cache}, target.read_bytes())

        def do_POST(self) -> None:
            """Only the API answers other methods (405, as in production)."""
            if urlsplit(self.path).path.startswith(API_PREFIX + "/"):
                self._api(self.path[len(API_PREFIX) :])
            else:
                _error(self, 405, "method_not_allowed", f"{self.command}: only GET is served")

        do_PUT = do_DELETE = do_PATCH = do_POST  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: a request log line per call would bury the command's own output."""

    try:
        server = _Server((LOOPBACK, port), Handler)
    except OSError as e:
        message = f"cannot listen on {LOOPBACK}:{port} ({e.strerror}); pass --port 0 for a free port"
        raise CoattailError(message) from e
    server.daemon_threads = True
    return server


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser closing a kept-alive connection is normal; anything else is printed as usual."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def url(server: ThreadingHTTPServer) -> str:
    """The dashboard's address."""
    return f"http://{LOOPBACK}:{server.server_address[1]}/"
