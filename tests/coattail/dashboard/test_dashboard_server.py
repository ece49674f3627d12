"""The dashboard server over real HTTP on 127.0.0.1: the alert API under /api (against the emulator),
the harness routes from a run directory and a live run, and the built files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from coattail.cli import app
from coattail.dashboard.live import LiveRun
from coattail.dashboard.server import Backend, make_dashboard_server, url
from coattail.run.judge import thinned_prices
from coattail.run.latency import LIVE_STAGES, LatencyRecorder
from coattail.run.outputs import DQ_COLUMNS
from core.histogram import RELATIVE_ERROR
from pipeline.api.store import ApiSettings
from pipeline.config import Config, RuntimeSettings
from pipeline.timing import BatchTiming
from replay.clock import Schedule
from tests.coattail.coattail_tapekit import at, make_tape
from tests.coattail.test_latency import T0, batch
from tests.pipeline.api.apikit import (
    SPECS,
    alert_rows,
    api_for,
    body,
    gateway_event,
    provision_api,
    write_alerts,
)

MINUTE = 60_000_000
TRADES = [(i * 7.0, "BTCUSDT", i + 1, 50_000.0 + i, 0.1 * (i % 5 + 1), "buy") for i in range(40)]
QUOTES = [(i * 11.0, "BTCUSDT", 49_990.0 + i, 50_010.0 + 2 * i, i) for i in range(30)]


def _get(address: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(address, timeout=30) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _json(address: str) -> tuple[int, Any]:
    status, _, raw = _get(address)
    return status, json.loads(raw)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("run")
    tape = make_tape(root / "tape", trades=TRADES, quotes=QUOTES)
    (root / "run.json").write_text(json.dumps({"tapes": [str(tape.path)]}))
    thinned_prices([tape.path]).write_parquet(root / "prices.parquet")
    (root / "pipeline").mkdir()
    dq = pl.DataFrame(
        {"exchange": ["binance"] * 3, "symbol": ["BTCUSDT"] * 3, "window_start": [0, MINUTE, None],
         "reason": ["TRADE_ID_GAP", "TRADE_ID_GAP", "PARSE_ERROR"], "count": [2, 3, 1]},
        schema=DQ_COLUMNS,
    )  # fmt: skip
    dq.write_parquet(root / "pipeline" / "dq_metrics.parquet")
    return root


@pytest.fixture(scope="module")
def api_settings(aws_endpoint: str, config: Config) -> ApiSettings:
    settings = provision_api(RuntimeSettings(aws_endpoint=aws_endpoint), prefix="ct-dash")
    write_alerts(config, settings, alert_rows(SPECS))
    return settings


def _serve(backend: Backend, dist: Path | None = None) -> Iterator[str]:
    server = make_dashboard_server(backend, 0, **({"dist": dist} if dist else {}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield url(server)
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def served(api_settings: ApiSettings, run_dir: Path, config: Config) -> Iterator[str]:
    target = config.model_copy(
        update={
            "dynamodb": config.dynamodb.model_copy(update={"alerts_table": api_settings.alerts_table}),
            "kinesis": config.kinesis.model_copy(update={"stream": api_settings.stream}),
            "runtime": api_settings.runtime,
        }
    )
    yield from _serve(Backend(config=target, run_path=run_dir))


@pytest.mark.integration
def test_api_under_the_prefix_answers_as_the_handlers(served: str, api_settings: ApiSettings) -> None:
    api = api_for(api_settings)
    for path, query in [("/alerts", {"symbol": "BTCUSDT", "limit": "3"}), ("/alerts", {"limit": "0"})]:
        status, got = _json(served + "api" + path + "?" + "&".join(f"{k}={v}" for k, v in query.items()))
        reply = api.handle(gateway_event(path, query))
        assert (status, got) == (reply["statusCode"], body(reply))
    first = body(api.handle(gateway_event("/alerts", {"limit": "1"})))["alerts"][0]
    assert _json(served + f"api/alerts/{first['alert_id']}") == (200, first)


@pytest.mark.integration
def test_market_series_from_the_tape(served: str) -> None:
    status, market = _json(served + "harness/market?symbol=BTCUSDT")
    assert status == 200 and market["symbol"] == "BTCUSDT"
    [binance] = market["exchanges"]
    assert binance["price"]["v"] == [p for _, _, _, p, _, _ in TRADES]  # few trades: none thinned out
    notional: dict[int, float] = defaultdict(float)
    for seconds, _, _, price, qty, _ in TRADES:
        notional[at(seconds) // MINUTE * MINUTE] += price * qty
    assert binance["notional_per_minute"]["t"] == sorted(notional)
    assert binance["notional_per_minute"]["v"] == pytest.approx([notional[t] for t in sorted(notional)])
    spreads: dict[int, list[float]] = defaultdict(list)
    for seconds, _, bid, ask, _ in QUOTES:
        spreads[at(seconds) // MINUTE * MINUTE].append((ask - bid) / ((ask + bid) / 2) * 1e4)
    means = [sum(v) / len(v) for _, v in sorted(spreads.items())]
    assert binance["spread_bps"]["v"] == pytest.approx(means)
    assert _json(served + "harness/market?symbol=NOPE") == (200, {"symbol": "NOPE", "exchanges": []})


@pytest.mark.integration
def test_symbols_dq_and_no_live_run(served: str) -> None:
    assert _json(served + "harness/symbols") == (200, {"symbols": ["BTCUSDT"]})
    assert _json(served + "harness/dq") == (200, {"by_reason": {"PARSE_ERROR": 1, "TRADE_ID_GAP": 5}})
    assert _json(served + "harness/run") == (200, None)  # nothing drives this dashboard
    status, error = _json(served + "harness/nope")
    assert status == 404 and "/market" in error["error"]["message"]
    assert _json(served + "config.json") == (200, {"apiBase": "./api", "harnessBase": "./harness"})


def test_live_run_before_and_after_it_provisions(run_dir: Path, config: Config) -> None:
    live = LiveRun()
    for base in _serve(Backend(live=live)):
        assert _json(base + "api/alerts")[1] == {"alerts": [], "count": 0, "next_cursor": None}
        assert _json(base + "api/health")[0] == 503
        assert _json(base + "harness/symbols") == (200, None)
        live.replayed(10, 100, at(5), at(0), at(60), 123.4)
        live.processed(8, 2)
        live.stage("replaying")
        status, state = _json(base + "harness/run")
        assert status == 200
        want = {"state": "replaying", "sent": 10, "total": 100, "position_us": at(5), "records_in": 8}
        assert {k: state[k] for k in want} == want
        live.provisioned("run-1", run_dir, config)
        assert _json(base + "harness/symbols") == (200, {"symbols": ["BTCUSDT"]})
        assert _json(base + "harness/run")[1]["run_id"] == "run-1"


def test_live_run_reports_the_recorders_per_event_latency() -> None:
    live = LiveRun()
    recorder = LatencyRecorder()
    recorder.set_schedule(Schedule(event_us=0, wall_us=T0, speed=1.0))
    timing = BatchTiming(0, started_us=T0 + 50_000, collected_us=T0 + 60_000, results_us=T0 + 80_000,
                         routed_us=T0 + 90_000)  # fmt: skip
    recorder.on_batch(batch(0, [10_000, 20_000], [T0 + 10_000, T0 + 20_000], [T0 + 30_000] * 2, timing))
    live.latency(recorder.live())  # as the run's on_batch does, before the batch's commit
    recorder.on_commit([0], T0 + 580_000)
    for base in _serve(Backend(live=live)):
        before = _json(base + "harness/run")[1]["latency"]
        assert before["queueing"] is False and before["speed"] == 1.0
        assert before["stages"]["freshness"]["count"] == 0 and before["stages"]["freshness"]["p50"] is None
        live.latency(recorder.live())
        stages = _json(base + "harness/run")[1]["latency"]["stages"]
        for name in LIVE_STAGES:
            want = recorder.histograms[name].summary_ms()
            assert {k: stages[name][k] for k in want} == want
        # scheduled at +10 ms and +20 ms; results at +80 ms; committed at +580 ms
        assert stages["results"]["count"] == stages["freshness"]["count"] == 2
        assert stages["results"]["p99"] == pytest.approx(70.0, rel=RELATIVE_ERROR)
        assert stages["freshness"]["p50"] == pytest.approx(560.0, rel=RELATIVE_ERROR)
        assert stages["freshness"]["label"] == "scheduled -> rows committed"


def test_live_latency_at_max_speed_is_queueing() -> None:
    live = LiveRun()
    assert live.snapshot()["latency"] is None  # no batch yet
    recorder = LatencyRecorder()
    recorder.set_schedule(Schedule(event_us=0, wall_us=T0, speed=None))
    live.latency(recorder.live())
    assert live.snapshot()["latency"]["queueing"] is True


def test_static_files(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>x</title>")
    (dist / "assets" / "index-abc.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("no")
    for base in _serve(Backend(), dist):
        status, headers, raw = _get(base)
        assert (status, raw) == (200, b"<!doctype html><title>x</title>")
        assert headers["Cache-Control"] == "no-cache"
        status, headers, _ = _get(base + "assets/index-abc.js")
        assert status == 200 and "javascript" in headers["Content-Type"]
        assert "immutable" in headers["Cache-Control"]
        assert _get(base + "../secret.txt")[0] == 404
        assert _get(base + "%2e%2e/secret.txt")[0] == 404
    for base in _serve(Backend(), tmp_path / "missing"):
        status, _, raw = _get(base)
        assert status == 200 and b"make install" in raw  # says how to build it


def _run_with_table(root: Path, run_dir: Path, config: Config, table: str, stream: str) -> Path:
    """A run directory whose config names ``table`` and ``stream`` (as a run's own resources)."""
    from coattail.run.rundir import RunDir

    run = RunDir.create(root, "served")
    names = {
        "dynamodb": config.dynamodb.model_copy(update={"alerts_table": table}),
        "kinesis": config.kinesis.model_copy(update={"stream": stream}),
    }
    run.write_json("run.json", json.loads((run_dir / "run.json").read_text()) | {"run_id": run.run_id})
    run.write_json("config.json", config.model_copy(update=names).model_dump(mode="json"))
    (run.path / "prices.parquet").write_bytes((run_dir / "prices.parquet").read_bytes())
    return run.path


def _serve_command(args: list[str]) -> tuple[subprocess.Popen[str], str, str]:
    """``coattail dashboard ARGS --port 0`` in a subprocess -> (process, its URL, what it printed before)."""
    command = [str(Path(sys.executable).parent / "coattail"), "dashboard", "--port", "0", *args]
    env = {**os.environ, "COLUMNS": "400"}
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert server.stdout is not None
    printed = ""
    line = server.stdout.readline()
    while "dashboard on" not in line and line:  # a "restored" or "not built" line may come first
        printed += line
        line = server.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:\d+/", line)
    if not found:
        server.kill()
        raise AssertionError(printed + line + (server.stderr.read() if server.stderr else ""))
    return server, found.group(0), printed


@pytest.mark.integration
def test_the_command_serves_a_run(
    api_settings: ApiSettings, aws_endpoint: str, config: Config, run_dir: Path, tmp_path: Path
) -> None:
    """``coattail dashboard --run latest --port 0`` prints its URL and serves the run's table and data."""
    _run_with_table(tmp_path / "runs", run_dir, config, api_settings.alerts_table, api_settings.stream)
    args = ["--run", "latest", "--runs", str(tmp_path / "runs"), "--endpoint", aws_endpoint]
    server, base, printed = _serve_command(args)
    try:
        assert "restored" not in printed  # the table is there
        status, health = _json(base + "api/health")
        assert status == 200 and health["table"]["name"] == api_settings.alerts_table
        assert _json(base + "harness/symbols") == (200, {"symbols": ["BTCUSDT"]})
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.integration
def test_the_command_restores_a_run_whose_table_is_gone(
    aws_endpoint: str, config: Config, run_dir: Path, tmp_path: Path
) -> None:
    """A run removes its table when it ends: the command puts back the alerts the run captured, with
    their own ``ts_written``, and the API serves them as the run wrote them."""
    table = f"ct-dash-gone-{tmp_path.name[-6:]}-alerts"
    run = _run_with_table(tmp_path / "runs", run_dir, config, table, "ct-dash-gone")
    captured = pl.DataFrame(alert_rows(SPECS)).with_columns(ts_written=pl.col("ts_event") + 250_000)
    captured.write_parquet(run / "pipeline" / "alerts.parquet", mkdir=True)
    server, base, printed = _serve_command(["--run", str(run), "--endpoint", aws_endpoint])
    try:
        assert f"restored {len(SPECS)} alerts of the run into {table}" in printed
        served = {a["alert_id"]: a for a in _json(base + "api/alerts?limit=1000")[1]["alerts"]}
        assert set(served) == set(captured["alert_id"])
        written = {a["alert_id"]: a["ts_written"] for a in served.values()}
        assert written == dict(captured.select("alert_id", "ts_written").iter_rows())
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.integration
def test_the_command_says_when_the_tiers_table_is_missing(aws_endpoint: str) -> None:
    args = ["dashboard", "--port", "0", "--endpoint", aws_endpoint, "--set", "dynamodb.alerts_table=ct-nope"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "400"})
    assert result.exit_code == 1
    assert "ct-nope does not exist" in result.output and "coattail up" in result.output


def test_live_rate_is_the_recent_one_not_the_mean() -> None:
    now = [0.0]
    live = LiveRun(clock=lambda: now[0])
    for t, sent in [(0.0, 0), (1.0, 100), (2.0, 300), (3.0, 1_300)]:
        now[0] = t
        live.replayed(sent, 2_000, at(t), at(0), at(60), rate=sent / max(t, 1.0))
    assert live.snapshot()["events_per_s"] == (1_300 - 100) / 2  # the last two seconds
    now[0] = 10.0  # a lone sample after a pause: the mean stands in
    live.replayed(1_400, 2_000, at(10), at(0), at(60), rate=140.0)
    assert live.snapshot()["events_per_s"] == 140.0


def test_a_taken_port_is_a_clear_error() -> None:
    from core.errors import CoattailError

    for base in _serve(Backend()):
        port = int(base.rsplit(":", 1)[1].strip("/"))
        with pytest.raises(CoattailError, match="--port 0"):
            make_dashboard_server(Backend(), port)
