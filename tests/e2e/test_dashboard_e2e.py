"""The dashboard in a real browser (playwright-core driving Debian's Chromium, headless) against the
dashboard server during a paced run (``coattail run --live``'s wiring) and over the finished run.

One run serves every check. Screenshots and the browser's results are artefacts of the test run, kept
after it (pytest's temporary directories rotate): ``$COATTAIL_TEST_ARTEFACTS/dashboard/{live,finished}/``,
by default under the checkout's ``runs/test-artefacts/`` (replaced by each test run).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from coattail.dashboard import browser
from coattail.dashboard.live import LiveRun
from coattail.dashboard.server import Backend, make_dashboard_server, url
from coattail.run.latency import LIVE_STAGES
from coattail.run.orchestrate import RunRequest, RunResult, execute, remove_own
from coattail.run.progress import Steps
from tests.conftest import REPO
from tests.e2e.whale_tapes import whale_day

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.spark]

FAULTS = Path(__file__).resolve().parents[2] / "fixtures" / "golden" / "whale-day-30m.faults.yaml"
SPEED = 60.0  # the 30-minute tape in 30 s: alerts arrive one by one while the browser watches


@dataclass(frozen=True)
class LiveSession:
    result: RunResult
    url: str
    live: dict[str, Any]
    artefacts: Path


def _require_browser() -> None:
    why = browser.missing()
    if why is None:
        return
    if os.environ.get("CI"):
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="module")
def session(aws_endpoint: str, spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSession]:
    _require_browser()
    artefacts = Path(os.environ.get("COATTAIL_TEST_ARTEFACTS", REPO / "runs" / "test-artefacts"))
    artefacts /= "dashboard"
    shutil.rmtree(artefacts, ignore_errors=True)
    tape = whale_day(tmp_path_factory.mktemp("tapes") / "whale-day", symbols=("BTCUSDT", "ETHUSDT"),
                     exchanges=("binance", "coinbase"), minutes=30, seed=7, scale=0.1)  # fmt: skip
    live = LiveRun()
    server = make_dashboard_server(Backend(live=live))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COATTAIL_AWS_ENDPOINT", aws_endpoint)
        mp.setenv("COATTAIL_STATE_DIR", str(tmp_path_factory.mktemp("state")))
        watcher = browser.start(url(server), "live", artefacts / "live")
        runs = tmp_path_factory.mktemp("runs")
        request = RunRequest(tapes=(tape,), speed=SPEED, faults=FAULTS, runs_root=runs, name="dashboard",
                             keep_resources=True)  # fmt: skip
        try:
            result = execute(request, spark=spark, observer=live)
            watched = browser.finish(watcher, artefacts / "live")
            yield LiveSession(result, url(server), watched, artefacts)
        finally:
            if watcher.poll() is None:
                watcher.kill()
            server.shutdown()
            server.server_close()
            if live.config is not None:
                remove_own(live.config, Steps())


def test_new_alerts_appear_live_during_the_paced_run(session: LiveSession) -> None:
    watched = session.live
    assert watched["ok"], watched["failures"]
    assert watched["first_during_run"] is not None  # a row appeared before the run had finished
    ids = set(browser.expected_alerts(session.result.run.path)["ids"])
    assert set(watched["seen_ms"]) == ids  # every alert of the run appeared while the page was open
    assert (session.artefacts / "live" / "live-first-alert.png").stat().st_size > 10_000


def test_the_run_route_ends_with_the_runs_per_event_latency(session: LiveSession) -> None:
    with urllib.request.urlopen(session.url + "harness/run", timeout=30) as reply:
        reported = json.loads(reply.read())["latency"]
    recorded = json.loads((session.result.run.path / "metrics" / "latency.json").read_text())
    assert reported["queueing"] is False and reported["speed"] == SPEED
    for name in LIVE_STAGES:  # the last report came after the last commit: it counts every event
        assert reported["stages"][name]["count"] == recorded["stages"][name]["count"] > 0, name


def test_finished_run_in_the_browser(session: LiveSession) -> None:
    expected = browser.expected_alerts(session.result.run.path)
    assert len(expected["ids"]) >= 4 and len(expected["by_detector"]) >= 2  # the checks have data to bite on
    out = session.artefacts / "finished"
    result = browser.finish(browser.start(session.url, "finished", out, expected), out)
    assert result["ok"], result["failures"]
    assert result["listed"] == len(expected["ids"])
    assert result["console_errors"] == []
    for shot in ("alerts", "alerts-filtered", "alert-detail", "symbol", "modules", "run"):
        assert (out / f"{shot}.png").stat().st_size > 10_000, shot
