"""The crash suite, bounded for CI: ``coattail pipeline run`` SIGKILLed (with its Spark JVM) during the
first trigger, during DynamoDB writes, with a table commit pending and between triggers, restarted from
its checkpoint each time: every tape event once in bronze, alerts unique and equal to an uninterrupted
run's in Iceberg and DynamoDB. The full version: ``coattail reliability crash --kills N TAPE``."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coattail.reliability.crash import PHASES, CrashSuite, plan
from pipeline.config import RuntimeSettings
from tests.pipeline.test_runner_tape import write_tape


@given(st.integers(1, 3 * len(PHASES)), st.integers(0, 2**32))
def test_a_plan_covers_every_phase_before_repeating_one(kills: int, seed: int) -> None:
    phases = plan(kills, seed)
    assert len(phases) == kills and phases == plan(kills, seed)
    for start in range(0, kills, len(PHASES)):
        cycle = phases[start:start + len(PHASES)]
        assert len(set(cycle)) == len(cycle)


@pytest.mark.integration
@pytest.mark.spark
@pytest.mark.e2e
def test_kills_at_four_phases_lose_and_double_nothing(aws_endpoint: str, tmp_path: Path) -> None:
    tape = write_tape(tmp_path / "tape", n=3_000)
    suite = CrashSuite(
        tapes=(tape,),
        runtime=RuntimeSettings(aws_endpoint=aws_endpoint, state_dir=tmp_path / "state"),
        workdir=tmp_path / "work",
        phases=("first-trigger", "dynamodb-writes", "table-commit", "between-triggers"),
        seed=3,
        overrides={"settings.MOD-001.default_threshold_usd": "1000"},
        max_records_per_batch=300,
    )
    report = suite.run()
    assert report.survived == 4, report.as_dict()
    assert report.bronze.expected == 3_000 and report.iceberg_alerts.expected > 10
    assert report.ok, report.as_dict()
