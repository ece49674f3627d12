"""The run's session starts while the stack comes up (``coattail.run.prestart``): what starting it raised is
raised where the run takes it, and a run that fails first stops it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coattail.run.orchestrate import RunRequest, execute
from coattail.run.prestart import SessionStart
from core.errors import PipelineError, StackError
from pipeline.config import Config
from tests.coattail.coattail_tapekit import make_tape


@pytest.fixture(autouse=True)
def _own_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state directory of the test's own: a warm driver the developer keeps under the checkout's
    (``coattail up --warm-driver``) would be attached to instead of the stand-in session."""
    monkeypatch.setenv("COATTAIL_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture
def own_config(config: Config, _own_state_dir: Path) -> Config:
    """The session's small tier under the test's own state directory."""
    runtime = config.runtime.model_copy(update={"state_dir": _own_state_dir})
    return config.model_copy(update={"runtime": runtime})


class _Session:
    """Stands in for a SparkSession in these unit tests (the real one is the session fixture's)."""

    def __init__(self) -> None:
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


def _started(monkeypatch: pytest.MonkeyPatch, outcome: _Session | BaseException) -> list[_Session]:
    built: list[_Session] = []

    def build_session(config: Config, *, app_name: str) -> tuple[_Session, None]:
        if isinstance(outcome, BaseException):
            raise outcome
        built.append(outcome)
        return outcome, None

    monkeypatch.setattr("pipeline.spark.build_session", build_session)
    monkeypatch.setattr("pipeline.source.register_sources", lambda session: None)
    monkeypatch.setattr("pipeline.spark.warm_python_workers", lambda session: None)
    return built


def test_the_session_started_meanwhile_is_the_one_taken(
    monkeypatch: pytest.MonkeyPatch, own_config: Config
) -> None:
    session = _Session()
    _started(monkeypatch, session)
    taken: object = SessionStart(own_config).session()
    assert taken is session


def test_a_failed_start_raises_its_own_error_where_the_session_is_taken(
    monkeypatch: pytest.MonkeyPatch, own_config: Config
) -> None:
    error = PipelineError("no Java 17 or 21 found: install one or set JAVA_HOME")
    _started(monkeypatch, error)
    start = SessionStart(own_config)
    with pytest.raises(PipelineError) as raised:
        start.session()
    assert raised.value is error
    start.discard()  # nothing was started: nothing to stop, nothing raised


def test_a_stack_failure_is_the_run_s_error_and_the_session_is_stopped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    session = _Session()
    _started(monkeypatch, session)

    def ensure_up(config: Config, **_: Any) -> Any:
        raise StackError("moto did not start on 127.0.0.1 within 30 s; see .coattail/moto.log")

    monkeypatch.setattr("infra.stack.ensure_up", ensure_up)
    trades = [(i, "BTCUSDT", i + 1, 50_000.0, 0.5, "buy") for i in range(5)]
    tape = make_tape(tmp_path / "tape", trades=trades)
    request = RunRequest(tapes=(tape.path,), runs_root=tmp_path / "runs")
    with pytest.raises(StackError, match="moto did not start"):
        execute(request)
    assert session.stopped


@pytest.mark.spark
def test_a_session_already_running_in_the_process_is_left_running(spark: Any, config: Config) -> None:
    # what an in-process run (a notebook's, `coattail demo` under CliRunner) gets from getOrCreate is the
    # session its owner started: the run is done with it, its owner is not
    start = SessionStart(config)
    assert start.session().sparkContext is spark.sparkContext
    start.discard()
    assert spark.range(3).count() == 3
