"""``PipelineRunner.wait_first_trigger``: a run holds its replay back until the query's first (slow)
trigger is over."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import PipelineError
from pipeline.runner import PipelineRunner
from pipeline.sinks.memory import MemoryAlertSink, MemoryTableSink
from pipeline.testkit import small_config
from tests.pipeline.test_runner_tape import write_tape

pytestmark = pytest.mark.spark


def test_it_returns_once_the_first_trigger_finished_and_refuses_a_stopped_query(
    spark: object, tmp_path: Path
) -> None:
    tape = write_tape(tmp_path / "tape", n=12)
    tables = MemoryTableSink()
    runner = PipelineRunner(small_config(), checkpoint=tmp_path / "cp", source=tape, spark=spark,  # type: ignore[arg-type]
                            table_sinks=[tables], alert_sinks=[MemoryAlertSink()])
    query = runner.start()
    try:
        runner.wait_first_trigger(timeout=120)
        progress = query.lastProgress
        assert progress is not None and progress["batchId"] == 0
    finally:
        runner.stop()
    with pytest.raises(PipelineError, match="not running"):
        runner.wait_first_trigger(timeout=1)
