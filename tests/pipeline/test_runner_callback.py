"""A failing ``on_batch`` callback fails the run: the batch is not counted as processed, so a caller waiting
for the count (``coattail run``) meets the failed query instead of a finished run with missing figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.errors import PipelineError
from pipeline.engine import BatchResult
from pipeline.runner import PipelineRunner
from pipeline.sinks.memory import MemoryAlertSink, MemoryTableSink
from tests.pipeline.keyed_kit import keyed_config, write_tape

pytestmark = pytest.mark.spark


def test_a_failing_callback_fails_the_run_and_counts_nothing(spark: Any, tmp_path: Path) -> None:
    tape = write_tape(tmp_path / "t")

    def broken(result: BatchResult) -> None:
        raise RuntimeError("observer bug")

    runner = PipelineRunner(keyed_config("driver"), checkpoint=tmp_path / "ck", source=tape, spark=spark,
                            table_sinks=[MemoryTableSink()], alert_sinks=[MemoryAlertSink()],
                            on_batch=broken)
    with pytest.raises(PipelineError, match="observer bug"):
        runner.run(until_idle=True, timeout=300)
    assert runner.progress.records_in == 0
