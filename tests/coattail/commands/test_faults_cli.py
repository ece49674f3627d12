"""``coattail faults``'s argument checks (the suite itself runs in tests/e2e/test_fault_suite.py)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from coattail.cli import app


def test_unknown_suite_and_real_aws_are_refused_before_anything_starts(tmp_path: Path) -> None:
    runner = CliRunner()
    unknown = runner.invoke(app, ["faults", "--suite", "nope", "--runs", str(tmp_path)])
    assert unknown.exit_code == 2 and "ci, full" in unknown.output
    aws = runner.invoke(app, ["faults", "--profile", "aws", "--runs", str(tmp_path)])
    assert aws.exit_code == 2 and "local emulator" in aws.output
    assert list(tmp_path.iterdir()) == []
