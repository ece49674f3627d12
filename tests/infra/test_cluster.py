"""``coattail cluster``: a Spark standalone master and workers on 127.0.0.1 whose status tells the truth.

Uses the test run's one cluster (``spark_cluster``), and puts it back as it was.
"""

from __future__ import annotations

import signal
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from coattail.cli import app
from infra import cluster
from infra.processes import LOOPBACK, port_accepts

pytestmark = pytest.mark.integration


def test_the_cluster_runs_a_master_and_two_one_core_workers(spark_cluster: tuple[Path, str]) -> None:
    state_dir, master = spark_cluster
    report = cluster.status(state_dir)
    assert report.healthy and report.alive_workers == 2
    assert report.state is not None and report.state.master_url == master
    assert master.startswith(f"spark://{LOOPBACK}:") and port_accepts(report.state.master_port)
    pids = [cluster.worker_process(state_dir, i).running_pid() for i in (1, 2)]
    assert None not in pids and cluster.master_process(state_dir).running_pid() not in pids
    assert len(set(pids)) == 2  # separate JVMs


def test_status_tells_a_dead_worker_and_up_brings_the_cluster_back(
    spark_cluster: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state_dir, _ = spark_cluster
    worker = cluster.worker_process(state_dir, 2)
    pid = worker.running_pid()
    assert pid is not None
    psutil.Process(pid).send_signal(signal.SIGKILL)
    psutil.Process(pid).wait(10)
    report = cluster.status(state_dir)
    assert not report.healthy and report.workers[1] == "dead"
    monkeypatch.setenv("COATTAIL_STATE_DIR", str(state_dir))
    result = CliRunner().invoke(app, ["cluster", "status"])
    assert result.exit_code == 1 and "dead" in result.output

    assert cluster.up(state_dir).healthy  # a broken cluster is replaced whole
    assert CliRunner().invoke(app, ["cluster", "status"]).exit_code == 0


def test_down_with_no_cluster_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not cluster.down(tmp_path)
    monkeypatch.setenv("COATTAIL_STATE_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["cluster", "down"])
    assert result.exit_code == 0 and "nothing to stop" in result.output
    assert "no cluster" in CliRunner().invoke(app, ["cluster", "status"]).output
