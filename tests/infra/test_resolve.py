"""The one policy for finding the stack: --endpoint > environment > stack.json > an error naming
`coattail up`. The recorded stack is a real ``stack.json`` pointing at a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coattail.cli import app
from core.errors import StackError
from infra.provision import StackSpec
from infra.resolve import find_stack, with_stack
from infra.stack import STATE_FILE, StackState
from pipeline.config import ConfigLoader, RuntimeSettings

CLI = "http://127.0.0.1:1111"
ENV = "http://127.0.0.1:2222"


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A state dir whose ``stack.json`` records an external stack that answers (a healthy one), with
    a per-service endpoint for Kinesis as kinesis-mock would have; yields (state dir, its endpoint)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    state = StackState(
        tier="small", profile="lite", region="us-east-1", endpoint=endpoint,
        service_endpoints={"kinesis": "http://127.0.0.1:3333"}, processes={},
        spec=StackSpec.from_config(ConfigLoader().load("small", env={})),
    )
    (state_dir / STATE_FILE).write_text(state.to_json())
    yield state_dir, endpoint
    server.shutdown()
    server.server_close()


def _env_runtime(state_dir: Path, **env: str) -> RuntimeSettings:
    """The runtime the config loader reads from an environment (as every command loads it)."""
    return ConfigLoader().load("small", env={"COATTAIL_STATE_DIR": str(state_dir), **env}).runtime


def test_the_command_line_endpoint_wins_over_environment_and_stack_json(recorded: tuple[Path, str]) -> None:
    state_dir, _ = recorded
    found = find_stack(_env_runtime(state_dir, COATTAIL_AWS_ENDPOINT=ENV), endpoint=CLI)
    assert (found.level, found.runtime.aws_endpoint) == ("command line", CLI)


def test_the_environment_wins_over_stack_json(recorded: tuple[Path, str]) -> None:
    state_dir, _ = recorded
    found = find_stack(_env_runtime(state_dir, COATTAIL_AWS_ENDPOINT=ENV))
    assert (found.level, found.runtime.aws_endpoint) == ("environment", ENV)
    assert found.runtime.service_endpoints == {}  # nothing of the recorded stack leaks in


def test_stack_json_is_used_when_no_endpoint_is_given(recorded: tuple[Path, str]) -> None:
    state_dir, endpoint = recorded
    found = find_stack(_env_runtime(state_dir))
    assert (found.level, found.runtime.aws_endpoint) == ("stack.json", endpoint)
    assert found.runtime.service_endpoints == {"kinesis": "http://127.0.0.1:3333"}


def test_a_per_service_endpoint_from_the_environment_wins_over_the_recorded_one(
    recorded: tuple[Path, str],
) -> None:
    state_dir, endpoint = recorded
    found = find_stack(_env_runtime(state_dir, COATTAIL_KINESIS_ENDPOINT=ENV, COATTAIL_GLUE_ENDPOINT=CLI))
    assert (found.level, found.runtime.aws_endpoint) == ("stack.json", endpoint)
    assert found.runtime.service_endpoints == {"kinesis": ENV, "glue": CLI}


def test_the_aws_profile_means_real_aws_without_looking_for_a_stack(recorded: tuple[Path, str]) -> None:
    state_dir, _ = recorded
    found = find_stack(_env_runtime(state_dir, COATTAIL_PROFILE="aws"))
    assert (found.level, found.runtime.aws_endpoint) == ("aws profile", None)


@pytest.mark.parametrize("env", [{}, {"COATTAIL_AWS_ENDPOINT": ""}])
def test_no_stack_is_an_error_that_says_to_run_coattail_up(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(StackError) as info:
        find_stack(_env_runtime(tmp_path / "state", **env))
    message = str(info.value)
    assert "coattail up" in message and str(tmp_path / "state" / STATE_FILE) in message
    assert "--endpoint" in message and "COATTAIL_AWS_ENDPOINT" in message


def test_a_recorded_stack_that_no_longer_answers_is_not_used(recorded: tuple[Path, str]) -> None:
    state_dir, _ = recorded
    state = StackState.from_json((state_dir / STATE_FILE).read_text())
    dead = StackState(**{**state.__dict__, "endpoint": "http://127.0.0.1:1"})
    (state_dir / STATE_FILE).write_text(dead.to_json())
    with pytest.raises(StackError, match="coattail up"):
        find_stack(_env_runtime(state_dir))


def test_with_stack_points_the_config_at_the_found_stack(recorded: tuple[Path, str]) -> None:
    state_dir, endpoint = recorded
    config = ConfigLoader().load("small", env={"COATTAIL_STATE_DIR": str(state_dir)})
    assert with_stack(config).runtime.aws_endpoint == endpoint
    assert with_stack(config, endpoint=CLI).runtime.aws_endpoint == CLI


def test_commands_share_the_policy_and_its_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("COATTAIL_AWS_ENDPOINT", "COATTAIL_PROFILE", "COATTAIL_KINESIS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COATTAIL_STATE_DIR", str(tmp_path / "state"))
    commands = (
        ["pipeline", "run", "--until-idle"],
        ["reprocess", "--profile", "mirror", "--from", "0", "--to", "1", "--output", "x"],
    )
    for args in commands:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1, result.output
        assert "no running stack" in result.output and "coattail up" in result.output, result.output
        assert "Traceback" not in result.output
