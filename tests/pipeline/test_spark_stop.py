"""``stop_session`` ends the JVM this process launched (``SparkSession.stop`` alone leaves it running with its
heap) and forgets its gateway, and leaves a JVM that still serves another context alone."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import psutil
import pytest
from pyspark import SparkContext

from pipeline.spark import stop_session

_CHILD = textwrap.dedent(
    """
    import psutil
    from pyspark import SparkContext
    from pipeline.config import ConfigLoader
    from pipeline.spark import build_session, stop_session

    spark, _ = build_session(ConfigLoader().load("small", env={}), app_name="stop-session-test")
    assert spark.range(3).count() == 3
    jvms = [p.pid for p in psutil.Process().children(recursive=True) if p.name() == "java"]
    print("jvm", *jvms, flush=True)
    stop_session(spark)
    print("left", *[p.pid for p in psutil.Process().children(recursive=True)], flush=True)
    # forgotten: the next SparkContext of this process launches a JVM of its own
    print("gateway", SparkContext._gateway, SparkContext._jvm, flush=True)
    """
)


def test_the_session_s_jvm_is_gone_once_stopped() -> None:
    # a child process: the test session's own JVM must stay up for the other tests
    done = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines() if line.strip()}
    assert len(lines["jvm"]) == 1
    assert lines["left"] == []  # no JVM, no Python worker daemon
    assert not psutil.pid_exists(int(lines["jvm"][0]))
    assert lines["gateway"] == ["None", "None"]


class _Process:
    def __init__(self) -> None:
        self.stdin = self
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def wait(self, timeout: float | None = None) -> int:
        return 0


class _Gateway:
    def __init__(self) -> None:
        self.proc = _Process()
        self.shut = False

    def shutdown(self) -> None:
        self.shut = True


class _Session:
    stopped = False

    def stop(self) -> None:
        self.stopped = True


def test_a_jvm_another_running_context_uses_is_left_running(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = _Gateway()
    monkeypatch.setattr(SparkContext, "_gateway", gateway)
    monkeypatch.setattr(SparkContext, "_active_spark_context", object())
    session: Any = _Session()
    stop_session(session)
    assert session.stopped
    assert not gateway.shut and not gateway.proc.closed
    assert SparkContext._gateway is gateway


def test_a_gateway_not_launched_here_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = _Gateway()
    gateway.proc = None  # type: ignore[assignment]  # spark-submit launched the JVM and this process
    monkeypatch.setattr(SparkContext, "_gateway", gateway)
    monkeypatch.setattr(SparkContext, "_active_spark_context", None)
    session: Any = _Session()
    stop_session(session)
    assert session.stopped and not gateway.shut
    assert SparkContext._gateway is gateway
