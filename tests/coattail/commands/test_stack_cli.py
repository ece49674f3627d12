"""``coattail up | status | down`` end to end through the real command line and a real emulator."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from coattail.cli import app
from infra import emulator
from infra.processes import is_alive

pytestmark = pytest.mark.integration

RESOURCES = ("coattail-events", "coattail-alerts", "coattail-warehouse", "coattail-checkpoints", "coattail")


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "state"
    monkeypatch.setenv("COATTAIL_STATE_DIR", str(directory))
    for name in (
        "COATTAIL_AWS_ENDPOINT",
        "COATTAIL_PROFILE",
        "COATTAIL_KINESIS_ENDPOINT",
        "COATTAIL_GLUE_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    return directory


def test_up_status_down(state_dir: Path) -> None:
    runner = CliRunner()
    up = runner.invoke(app, ["up", "--tier", "small"], terminal_width=200)
    try:
        assert up.exit_code == 0, up.output
        for name in RESOURCES:
            assert name in up.output
        assert "stack up at http://127.0.0.1:" in up.output
        pid = emulator.server_process("moto", state_dir).running_pid()
        assert pid is not None

        status = runner.invoke(app, ["status"], terminal_width=200)
        assert status.exit_code == 0, status.output
        for name in RESOURCES:
            assert name in status.output
        assert "running" in status.output
        assert "stack: up: tier small, profile lite" in status.output
    finally:
        down = runner.invoke(app, ["down"])
    assert down.exit_code == 0, down.output
    assert f"stopped moto (pid {pid})" in down.output
    assert not is_alive(pid)
    after = runner.invoke(app, ["status"])
    assert after.exit_code == 0
    assert "stack: down" in after.output


def test_status_exits_non_zero_when_the_emulator_died(state_dir: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["up"]).exit_code == 0
    process = emulator.server_process("moto", state_dir)
    pid = process.running_pid()
    assert pid is not None
    from infra.processes import terminate

    terminate(pid)
    status = runner.invoke(app, ["status"], terminal_width=200)
    assert status.exit_code == 1
    assert "dead" in status.output
    assert "killed or crashed" in status.output
    again = runner.invoke(app, ["up"], terminal_width=200)
    assert again.exit_code == 0, again.output
    assert "had died" in again.output and "fresh --checkpoint" in again.output
    terminate(process.running_pid() or 0)
    down = runner.invoke(app, ["down"])
    assert "removed a stale pid file for moto" in down.output


def test_guard_refuses_real_aws_with_a_one_line_error(state_dir: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["up", "--endpoint", "https://dynamodb.us-east-1.amazonaws.com"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: refusing to talk to https://dynamodb.us-east-1.amazonaws.com")
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) <= 3  # one message, possibly soft-wrapped
    assert not state_dir.exists()
    profile_only = runner.invoke(app, ["up", "--profile", "aws"])
    assert profile_only.exit_code == 1
    assert "--allow-real-aws" in profile_only.stderr


def test_port_in_use_is_a_one_line_error(state_dir: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = CliRunner().invoke(app, ["up", "--port", str(port)])
    assert result.exit_code == 1
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr
