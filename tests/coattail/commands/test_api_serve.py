"""``coattail api serve``: the alert API's handlers over real HTTP on 127.0.0.1, against the emulator."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coattail.api_server import make_server
from coattail.run.rundir import RunDir
from pipeline.api.store import ApiSettings
from pipeline.config import Config, RuntimeSettings
from tests.pipeline.api.apikit import SPECS, alert_rows, api_for, gateway_event, provision_api, write_alerts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api_settings(aws_endpoint: str, config: Config) -> ApiSettings:
    settings = provision_api(RuntimeSettings(aws_endpoint=aws_endpoint), prefix="ct-serve")
    write_alerts(config, settings, alert_rows(SPECS))
    return settings


@pytest.fixture(scope="module")
def base_url(api_settings: ApiSettings) -> Iterator[str]:
    server = make_server(api_for(api_settings), 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _get(url: str, method: str = "GET") -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, dict(reply.headers), json.loads(reply.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def test_served_answers_equal_the_handlers(base_url: str, api_settings: ApiSettings) -> None:
    api = api_for(api_settings)
    for path, query in [
        ("/alerts", {"symbol": "BTCUSDT", "limit": "5"}),
        ("/alerts", {"detector": "MOD-002", "severity": "critical"}),
        ("/symbols/ETHUSDT/summary", {"to": "2026-01-01T01:00Z"}),
        ("/alerts", {"limit": "0"}),
        ("/nowhere", {}),
    ]:
        target = path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
        status, headers, got = _get(base_url + target)
        direct = api.handle(gateway_event(path, query))
        assert status == direct["statusCode"]
        assert headers["content-type"] == "application/json"
        assert got == json.loads(direct["body"])


def test_paging_over_http_follows_the_cursor(base_url: str) -> None:
    seen: list[str] = []
    cursor = ""
    while True:
        status, _, page = _get(f"{base_url}/alerts?symbol=SOLUSDT&limit=7{cursor}")
        assert status == 200
        seen.extend(a["alert_id"] for a in page["alerts"])
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert len(seen) == len(set(seen)) == sum(s[0] == "SOLUSDT" for s in SPECS)


def test_other_methods_and_a_single_alert(base_url: str) -> None:
    status, headers, _ = _get(f"{base_url}/alerts", method="POST")
    assert status == 405 and headers["Allow"] == "GET"
    _, _, page = _get(f"{base_url}/alerts?limit=1")
    alert = page["alerts"][0]
    assert _get(f"{base_url}/alerts/{alert['alert_id']}")[2] == alert


@pytest.mark.parametrize("source", ["set", "run"])
def test_the_command_serves_the_stack(
    api_settings: ApiSettings, aws_endpoint: str, config: Config, tmp_path: Path, source: str
) -> None:
    """``coattail api serve --port 0`` prints where it listens and answers there until stopped; the
    table and stream come from ``--set`` or from a run directory's config (``--run``)."""
    command = [
        str(Path(sys.executable).parent / "coattail"), "api", "serve", "--port", "0",
        "--endpoint", aws_endpoint,
    ]  # fmt: skip
    if source == "set":
        command += ["--set", f"dynamodb.alerts_table={api_settings.alerts_table}"]
        command += ["--set", f"kinesis.stream={api_settings.stream}"]
    else:
        run = RunDir.create(tmp_path / "runs", "served")
        names = {
            "dynamodb": config.dynamodb.model_copy(update={"alerts_table": api_settings.alerts_table}),
            "kinesis": config.kinesis.model_copy(update={"stream": api_settings.stream}),
        }
        run.write_json("run.json", {"run_id": run.run_id})
        run.write_json("config.json", config.model_copy(update=names).model_dump(mode="json"))
        command += ["--run", "latest", "--runs", str(tmp_path / "runs")]
    env = {**os.environ, "COLUMNS": "400"}
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert found, line + (server.stderr.read() if server.stderr else "")
        status, _, health = _get(f"http://127.0.0.1:{found.group(1)}/health")
        assert status == 200
        assert health["table"]["name"] == api_settings.alerts_table
        assert health["last_alert"]["ts_event"] == max(s[4] for s in SPECS)
    finally:
        server.terminate()
        server.wait(timeout=30)
