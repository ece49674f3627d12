"""``coattail pipeline run`` on a tape against the emulator (DynamoDB) and the lite catalog."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from coattail.cli import app
from pipeline.aws import client
from pipeline.config import RuntimeSettings
from pipeline.sinks.iceberg import IcebergSink
from pipeline.testkit import small_config

pytestmark = [pytest.mark.spark, pytest.mark.integration, pytest.mark.e2e]


def test_pipeline_run_until_idle_on_a_tape(spark: object, aws_endpoint: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.pipeline.test_runner_tape import write_tape

    tape = write_tape(tmp_path / "tape")
    table = "cli-alerts"
    client("dynamodb", RuntimeSettings(aws_endpoint=aws_endpoint)).create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "alert_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "alert_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    monkeypatch.setenv("COATTAIL_STATE_DIR", str(tmp_path / "state"))
    result = CliRunner().invoke(app, [
        "pipeline", "run", "--tier", "small", "--profile", "lite", "--endpoint", aws_endpoint,
        "--tape", str(tape), "--until-idle", "--checkpoint", str(tmp_path / "ck"),
        "--set", "modules=[MOD-001, MOD-004]", "--set", f"dynamodb.alerts_table={table}",
        "--set", "settings.MOD-001.default_threshold_usd=1000",
    ])
    assert result.exit_code == 0, result.output
    assert "done: 120 records (120 valid, 0 quarantined)" in result.output
    cfg = small_config().model_copy(update={"runtime": RuntimeSettings(state_dir=tmp_path / "state")})
    assert IcebergSink(cfg).read("trades").num_rows > 0


def test_pipeline_run_without_a_stack_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COATTAIL_STATE_DIR", str(tmp_path / "nothing"))
    result = CliRunner().invoke(app, ["pipeline", "run", "--profile", "lite"])
    assert result.exit_code == 1
    assert "coattail up" in result.output and "Traceback" not in result.output
