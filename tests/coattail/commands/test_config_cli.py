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


def _leaves(node: object, prefix: str = "") -> dict[str, object]:
    """Dotted key -> value of every leaf; a list is one value."""
    if isinstance(node, dict) and node:
        out: dict[str, object] = {}
        for key, value in node.items():
            out |= _leaves(value, f"{prefix}{key}.")
        return out
    return {prefix[:-1]: node}


# what `config show` prints besides the layered files: the instruments registry (config/instruments.yaml),
# the tier's instruments resolved from it, the token table and wallet labels (config/tokens.yaml,
# config/wallets.yaml), and the runtime (COATTAIL_* variables and command-line flags)
NOT_LAYERED = ("instruments", "active_instruments", "runtime", "tokens", "wallets")


@pytest.mark.parametrize("tier", ["small", "large"])
def test_every_key_show_prints_is_accepted_back_by_set(tier: str) -> None:
    shown = CliRunner().invoke(app, ["config", "show", "--tier", tier, "--format", "json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    leaves = {k: v for k, v in _leaves(data).items() if k.split(".")[0] not in NOT_LAYERED}
    assert any(k.startswith("settings.MOD-001.thresholds_usd.") for k in leaves)
    sets: list[str] = []
    for key, value in leaves.items():
        # as a user types it: text as it is, anything else in its JSON (YAML) form
        sets += ["--set", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    again = CliRunner().invoke(app, ["config", "show", "--tier", tier, "--format", "json", *sets])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == data
