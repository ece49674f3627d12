"""A killed replay resumed with ``coattail replay --resume``: the stream ends holding every tape event
exactly as often as the tape does (resends included), nothing twice (issue 23: the replay process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coattail.cli import app
from core.tape import Tape
from pipeline.aws import client
from pipeline.config import RuntimeSettings
from replay.merge import KIND_CODE
from replay.resume import EventKey, events_in_stream
from tests.pipeline.test_runner_tape import write_tape

pytestmark = pytest.mark.integration


def _tape_keys(tape: Path) -> Counter[EventKey]:
    keys: Counter[EventKey] = Counter()
    opened = Tape.open(tape)
    for kind, native in (("trade", "trade_id"), ("quote", "update_id")):
        table = opened.read(kind, ["exchange", "symbol", native])  # type: ignore[arg-type]
        keys.update((KIND_CODE[kind], ex, sym, nid) for ex, sym, nid in zip(  # type: ignore[index]
            *(table.column(c).to_pylist() for c in ("exchange", "symbol", native)), strict=True))
    return keys


def test_a_killed_replay_resumes_without_sending_twice(
    aws_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tape = write_tape(tmp_path / "tape", n=600)
    stream = f"resume-{uuid.uuid4().hex[:8]}"
    runtime = RuntimeSettings(aws_endpoint=aws_endpoint)
    kinesis = client("kinesis", runtime)
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream)
    env = {**os.environ, "COATTAIL_AWS_ENDPOINT": aws_endpoint, "COATTAIL_STATE_DIR": str(tmp_path / "s")}
    args = [sys.executable, "-c", "import sys; from coattail.cli import app; sys.exit(app())", "replay",
            str(tape), "--target", "kinesis", "--speed", "100x", "--set", f"kinesis.stream={stream}"]
    child = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.monotonic() + 120
    while events_in_stream(runtime, stream).total() < 50:
        assert child.poll() is None and time.monotonic() < deadline, "the replay ended before the kill"
        time.sleep(0.1)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    before = events_in_stream(runtime, stream)
    expected = _tape_keys(tape)
    assert 0 < before.total() < expected.total() == 600

    monkeypatch.setenv("COATTAIL_AWS_ENDPOINT", aws_endpoint)
    monkeypatch.setenv("COATTAIL_STATE_DIR", str(tmp_path / "s"))
    result = CliRunner().invoke(app, ["replay", str(tape), "--target", "kinesis", "--resume",
                                      "--set", f"kinesis.stream={stream}"])
    assert result.exit_code == 0, result.output
    assert f"resuming: {before.total():,} events" in result.output
    assert events_in_stream(runtime, stream) == expected
