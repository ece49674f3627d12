"""``cli_errors``: AWS, Spark and OS errors reach the user as one line saying what to do, no traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import typer
from botocore.exceptions import ClientError, EndpointConnectionError
from py4j.protocol import Py4JError
from typer.testing import CliRunner

from coattail.cli import app
from coattail.commands.stack import cli_errors, error_message
from core.errors import ConfigError

PY4J_TEXT = "An error occurred while calling o42.start.\n: java.lang.OutOfMemoryError: heap\n\tat Spark.run"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens once the socket is closed


def test_unreachable_endpoint_is_one_line_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("COATTAIL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("COATTAIL_AWS_ENDPOINT", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    tape = Path(__file__).resolve().parents[3] / "fixtures" / "real" / "tardis_trades_head1000.csv"
    imported = CliRunner().invoke(app, ["tape", "import", str(tape), "--out", str(tmp_path / "tape")])
    assert imported.exit_code == 0, imported.output
    # the mirror profile's Glue catalog is the first thing ``load`` asks the endpoint for
    load = ["load", str(tmp_path / "tape"), "--profile", "mirror"]
    result = CliRunner().invoke(app, load, terminal_width=400)
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"error: cannot reach the AWS endpoint {endpoint}")
    assert "coattail up" in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ConfigError("kinesis.shards: must be > 0"), "kinesis.shards: must be > 0"),
        (
            EndpointConnectionError(endpoint_url="http://127.0.0.1:1/"),
            "cannot reach the AWS endpoint http://127.0.0.1:1/: start the local stack with `coattail up`",
        ),
        (
            ClientError(
                {"Error": {"Code": "ResourceNotFoundException", "Message": "Stream x not found"}},
                "DescribeStream",
            ),
            "AWS DescribeStream failed: ResourceNotFoundException: Stream x not found; check that the stack",
        ),
        (
            Py4JError(PY4J_TEXT),
            "Spark failed: java.lang.OutOfMemoryError: heap; check that a supported JDK",
        ),
        (
            FileNotFoundError(2, "No such file or directory", "/nope/tape"),
            "/nope/tape: No such file or directory; check the path",
        ),
        (ConnectionRefusedError(111, "Connection refused"), "is the local stack up?"),
    ],
)
def test_each_kind_of_error_gets_a_message_saying_what_to_do(error: Exception, expected: str) -> None:
    message = error_message(error)
    assert message is not None and expected in message
    assert "\n" not in message


def test_bugs_keep_their_traceback() -> None:
    assert error_message(KeyError("x")) is None
    with pytest.raises(KeyError), cli_errors():
        raise KeyError("x")
    with pytest.raises(typer.Exit), cli_errors():
        raise OSError(28, "No space left on device")
