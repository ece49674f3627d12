"""``PipelineRunner.wait_first_trigger``: a run holds its replay back until the query's first (slow)
trigger has fixed its batch's offsets and reached the batch function."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from core.errors import PipelineError
from pipeline.engine import BatchResult
from pipeline.runner import PipelineRunner
from pipeline.sinks.memory import MemoryAlertSink, MemoryTableSink
from pipeline.testkit import small_config
from tests.pipeline.test_runner_tape import write_tape

pytestmark = pytest.mark.spark


def test_it_returns_once_the_first_trigger_planned_its_batch_and_refuses_a_stopped_query(
    spark: object, tmp_path: Path
) -> None:
    tape = write_tape(tmp_path / "tape", n=12)
    tables = MemoryTableSink()
    runner = PipelineRunner(small_config(), checkpoint=tmp_path / "cp", source=tape, spark=spark,  # type: ignore[arg-type]
                            table_sinks=[tables], alert_sinks=[MemoryAlertSink()])
    query = runner.start()
    try:
        runner.wait_first_trigger(timeout=120)
        assert (tmp_path / "cp" / "query" / "offsets" / "0").is_file()
        query.processAllAvailable()
        assert query.recentProgress[0]["batchId"] == 0
    finally:
        runner.stop()
    with pytest.raises(PipelineError, match="not running"):
        runner.wait_first_trigger(timeout=1)


def test_it_returns_while_the_first_batch_runs_its_offsets_fixed(spark: object, tmp_path: Path) -> None:
    tape = write_tape(tmp_path / "tape", n=12)
    release = threading.Event()

    def hold(_result: BatchResult) -> None:
        release.wait(120)

    runner = PipelineRunner(small_config(), checkpoint=tmp_path / "cp", source=tape, spark=spark,  # type: ignore[arg-type]
                            table_sinks=[MemoryTableSink()], alert_sinks=[MemoryAlertSink()],
                            on_batch=hold)  # fmt: skip
    query = runner.start()
    try:
        runner.wait_first_trigger(timeout=60)
        # the first batch is still in the batch function, its range already in the offset log: what
        # is sent from now on goes to the next batch
        assert query.lastProgress is None
        assert (tmp_path / "cp" / "query" / "offsets" / "0").is_file()
    finally:
        release.set()
        runner.stop()
