"""``coattail config show``: the resolved config, with environment and --set applied in order."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from coattail.cli import app


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("COATTAIL"):
            monkeypatch.delenv(name)


def test_show_medium_prints_the_resolved_tier() -> None:
    result = CliRunner().invoke(app, ["config", "show", "--tier", "medium"])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(result.stdout)
    assert data["tier"] == "medium"
    assert data["kinesis"] == {"stream": "coattail-events", "shards": 4}
    assert data["runtime"]["profile"] == "lite"
    # printed under the keys --set takes
    assert data["settings"]["MOD-001"]["default_threshold_usd"] > 0
    first = data["instruments"]["instruments"][0]
    assert (first["exchange"], first["symbol"], first["quote"]) == ("binance", "BTCUSDT", "USDT")


def test_environment_then_set_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COATTAIL__KINESIS__SHARDS", "6")
    monkeypatch.setenv("COATTAIL__SPARK__WATERMARK_SECONDS", "30")
    result = CliRunner().invoke(
        app, ["config", "show", "--tier", "small", "--set", "kinesis.shards=9", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["kinesis"]["shards"] == 9
    assert data["spark"]["watermark_seconds"] == 30


def test_bad_set_names_the_key_in_one_line() -> None:
    result = CliRunner().invoke(app, ["config", "show", "--set", "kinesis.shardz=3"])
    assert result.exit_code == 1
    assert "kinesis.shardz: unknown key" in result.stderr
    assert "Traceback" not in result.output
    malformed = CliRunner().invoke(app, ["config", "show", "--set", "kinesis.shards"])
    assert malformed.exit_code == 1
    assert "expected key=value" in malformed.stderr


def test_unknown_tier_is_rejected_by_the_command_line() -> None:
    result = CliRunner().invoke(app, ["config", "show", "--tier", "huge"])
    assert result.exit_code == 2
