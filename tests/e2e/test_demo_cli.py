"""``coattail demo`` (what ``make demo`` runs) end to end through the command line, on a short market."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from coattail.cli import app

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.spark]


@pytest.mark.parametrize("tier", ["small", "medium"])
def test_demo_generates_runs_validates_and_reports(
    aws_endpoint: str, spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tier: str
) -> None:
    monkeypatch.setenv("COATTAIL_AWS_ENDPOINT", aws_endpoint)
    monkeypatch.setenv("COATTAIL_STATE_DIR", str(tmp_path / "state"))
    runs = tmp_path / "runs"
    args = ["demo", "--duration", "30m", "--scale", "0.1", "--speed", "max", "--runs", str(runs)]
    args += ["--tier", tier]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    [run] = [p for p in runs.iterdir() if p.name.endswith("-demo")]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["labels"]["ok"] and summary["labels"]["misses"] == 0
    assert summary["reference"]["ok"]
    assert summary["events"] > 10_000
    assert (run / "report.html").stat().st_size > 100_000
    assert "PASS" in result.output
    if tier == "medium":  # the medium modules caught every pattern medium-day plants
        assert {d: summary["scores"][d]["recall"] for d in ("MOD-006", "MOD-007")} == {
            "MOD-006": 1.0,
            "MOD-007": 1.0,
        }
