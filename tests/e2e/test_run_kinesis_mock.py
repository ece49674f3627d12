"""A whole run on the high-fidelity Kinesis (defect 11 of issue 23): ``coattail run`` takes a running
stack started with ``--kinesis kinesis-mock`` as it is, instead of refusing it, and removes the run's own
stream, alerts table and namespace when it ends (defect 6)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coattail.run.orchestrate import RunRequest, execute
from infra import stack
from infra.run_resources import stream_names
from pipeline.aws import client
from pipeline.config import ConfigLoader, RuntimeSettings

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.spark, pytest.mark.kinesis_mock]


@pytest.fixture
def mock_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[stack.StackHandle]:
    state = tmp_path / "state"
    monkeypatch.delenv("COATTAIL_AWS_ENDPOINT", raising=False)
    monkeypatch.setenv("COATTAIL_STATE_DIR", str(state))
    config = ConfigLoader().load("small", env={})
    handle = stack.up(config.model_copy(update={"runtime": RuntimeSettings(state_dir=state)}),
                      kinesis="kinesis-mock")
    yield handle
    stack.down(state)


def test_a_run_uses_a_running_kinesis_mock_stack(
    mock_stack: stack.StackHandle, tmp_path: Path, spark: Any
) -> None:
    from tests.pipeline.test_runner_tape import write_tape

    tape = write_tape(tmp_path / "tape", n=600)
    result = execute(RunRequest(tapes=(tape,), runs_root=tmp_path / "runs", name="mock",
                                overrides={"settings.MOD-001.default_threshold_usd": "1000"}), spark=spark)
    counts = result.run.read_json("run.json")["counts"]
    assert counts["sent"] == counts["records_in"] == 600
    assert result.judgement.summary["reference"]["ok"], result.judgement.summary["reference"]
    assert result.judgement.summary["alerts"] > 5
    # it went through kinesis-mock, and the run's own stream is gone from it again
    config = result.run.read_json("config.json")
    kinesis = client("kinesis", mock_stack.runtime)
    assert kinesis.meta.endpoint_url == mock_stack.runtime.service_endpoints["kinesis"]
    assert config["kinesis"]["stream"] not in stream_names(kinesis)
    assert "coattail-events" in stream_names(kinesis)
