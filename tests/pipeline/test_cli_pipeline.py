"""``coattail pipeline run`` on a tape against the emulator (DynamoDB) and the lite catalog."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from coattail.cli import app
from infra.package import Package
from pipeline.aws import client
from pipeline.config import RuntimeSettings
from pipeline.sinks.iceberg import IcebergSink
from pipeline.testkit import small_config

pytestmark = [pytest.mark.spark, pytest.mark.integration, pytest.mark.e2e]


def alerts_table(aws_endpoint: str, name: str) -> str:
    client("dynamodb", RuntimeSettings(aws_endpoint=aws_endpoint)).create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "alert_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "alert_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def run_on_tape(aws_endpoint: str, tmp_path: Path, table: str, *where: str) -> None:
    """``coattail pipeline run`` over a 120-record tape until idle (``where``: e.g. ``--master URL``)."""
    from tests.pipeline.test_runner_tape import write_tape

    tape = write_tape(tmp_path / "tape")
    result = CliRunner().invoke(app, [
        "pipeline", "run", "--tier", "small", "--profile", "lite", "--endpoint", aws_endpoint,
        "--tape", str(tape), "--until-idle", "--checkpoint", str(tmp_path / "ck"),
        "--set", "modules=[MOD-001, MOD-004]", "--set", f"dynamodb.alerts_table={table}",
        "--set", "settings.MOD-001.default_threshold_usd=1000", *where,
    ])
    assert result.exit_code == 0, result.output
    assert "done: 120 records (120 valid, 0 quarantined)" in result.output
    cfg = small_config().model_copy(update={"runtime": RuntimeSettings(state_dir=tmp_path / "state")})
    assert IcebergSink(cfg).read("trades").num_rows > 0


def test_pipeline_run_until_idle_on_a_tape(spark: object, aws_endpoint: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COATTAIL_STATE_DIR", str(tmp_path / "state"))
    run_on_tape(aws_endpoint, tmp_path, alerts_table(aws_endpoint, "cli-alerts"))


def test_pipeline_run_on_the_cluster_submits_the_package(
    spark_cluster: tuple[Path, str], job_package: Package, aws_endpoint: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COATTAIL_STATE_DIR", str(tmp_path / "state"))
    table = alerts_table(aws_endpoint, "cli-cluster-alerts")
    master, package = spark_cluster[1], str(job_package.path)
    run_on_tape(aws_endpoint, tmp_path, table, "--master", master, "--package", package)


@pytest.mark.parametrize(("args", "says"), [
    (["--master", "local[2]"], "spark://HOST:PORT"),
    (["--master", "spark://127.0.0.1:7077"], "coattail package --tier T"),
])
def test_pipeline_run_on_a_master_says_what_it_needs(
    args: list[str], says: str, aws_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COATTAIL_STATE_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["pipeline", "run", "--endpoint", aws_endpoint, *args])
    assert result.exit_code == 1 and says in result.output and "Traceback" not in result.output


def test_pipeline_run_without_a_stack_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COATTAIL_STATE_DIR", str(tmp_path / "nothing"))
    result = CliRunner().invoke(app, ["pipeline", "run", "--profile", "lite"])
    assert result.exit_code == 1
    assert "coattail up" in result.output and "Traceback" not in result.output
