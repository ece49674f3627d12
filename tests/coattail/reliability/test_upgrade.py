"""Upgrade, which is what a promotion is: the previous commit's pipeline reads half a tape from Kinesis
and stops; the working tree's pipeline restarts from that checkpoint, engine state and those tables,
reads the rest, and ends with the same bronze rows and alerts (Iceberg and DynamoDB) as an uninterrupted
run of the working tree. Where the two revisions cannot share a checkpoint, the restart must refuse by
naming the incompatibility: then this test fails on the exit code and prints the message.

``COATTAIL_UPGRADE_FROM`` names another baseline revision (default ``HEAD~1``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from coattail.reliability.crash import CrashReport, CrashSuite, compare, fill, wait_ok
from core.tape import Tape, TapeWriter
from infra.provision import StackSpec, provision
from pipeline.config import RuntimeSettings
from tests.conftest import REPO
from tests.pipeline.test_runner_tape import write_tape

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.e2e]


def _checkout(revision: str, into: Path) -> Path:
    """``revision`` of this repository as plain files in ``into`` (skip when there is no git checkout)."""
    try:
        subprocess.run(["git", "rev-parse", "--verify", f"{revision}^{{commit}}"], cwd=REPO, check=True,
                       capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"not a git checkout with a revision {revision}: the upgrade test needs one")
    into.mkdir()
    archive = subprocess.run(["git", "archive", revision], cwd=REPO, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _halves(tape: Path, out: Path) -> tuple[Path, Path]:
    """The tape cut at its middle event time into two tapes (replayed one after the other, the same
    records in the same order per key as the whole tape)."""
    whole = Tape.open(tape)
    trades, quotes = whole.read("trade"), whole.read("quote")
    times = sorted(trades.column("ts_event").to_pylist() + quotes.column("ts_event").to_pylist())
    cut = times[len(times) // 2]
    paths = []
    for name, keep in (("first", pc.less), ("second", pc.greater_equal)):
        path = out / name
        with TapeWriter(path) as w:
            for kind, table in (("trade", trades), ("quote", quotes)):
                part: pa.Table = table.filter(keep(table.column("ts_event"), cut))
                w.write(kind, part)  # type: ignore[arg-type]
            w.close(source="synthetic")
        paths.append(path)
    return paths[0], paths[1]


def test_working_tree_resumes_the_previous_commits_checkpoint(aws_endpoint: str, tmp_path: Path) -> None:
    previous = _checkout(os.environ.get("COATTAIL_UPGRADE_FROM", "HEAD~1"), tmp_path / "previous")
    tape = write_tape(tmp_path / "tape", n=2_000)
    first, second = _halves(tape, tmp_path)
    suite = CrashSuite(
        tapes=(tape,), runtime=RuntimeSettings(aws_endpoint=aws_endpoint, state_dir=tmp_path / "state"),
        workdir=tmp_path / "work", phases=(), overrides={"settings.MOD-001.default_threshold_usd": "1000"},
        max_records_per_batch=300,
    )
    baseline = suite.resolved("upgrade-a")
    upgraded = suite.resolved("upgrade-b", stream=baseline.kinesis.stream)
    for cfg in (baseline, upgraded):
        provision(StackSpec.from_config(cfg), cfg.runtime)
    suite.workdir.mkdir()
    ckpt = suite.workdir / "upgraded"

    fill([first], baseline, lambda _: None)
    wait_ok(suite.launch(upgraded, ckpt, code=previous), "the previous commit's pipeline")
    fill([second], baseline, lambda _: None)
    restart = suite.launch(upgraded, ckpt)
    if restart.wait() != 0:
        pytest.fail("the working tree refused or failed on the previous commit's checkpoint:\n"
                    + ckpt.with_suffix(".log").read_text()[-3_000:])
    wait_ok(suite.launch(baseline, suite.workdir / "baseline"), "the uninterrupted run")

    report = CrashReport(events=2_000)
    compare(report, [Tape.open(tape)], baseline, upgraded)
    assert report.bronze.expected == 2_000 and report.iceberg_alerts.expected > 10
    assert report.ok, report.as_dict()
