"""``PipelineRunner.start`` closes what it opened when starting the query fails (no Spark needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import DataFrame

from core.errors import PipelineError
from pipeline.runner import PipelineRunner
from pipeline.sinks.memory import MemoryAlertSink, MemoryTableSink
from pipeline.testkit import small_config


class _ClosingAlertSink(MemoryAlertSink):
    def __init__(self) -> None:
        super().__init__()
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


class _NoSourceRunner(PipelineRunner):
    def source_stream(self) -> DataFrame:
        raise PipelineError("the source cannot be read")


def test_a_failed_start_closes_the_sinks_and_the_spool_thread(tmp_path: Path) -> None:
    alerts = _ClosingAlertSink()
    runner = _NoSourceRunner(small_config(), checkpoint=tmp_path, table_sinks=[MemoryTableSink()],
                             alert_sinks=[alerts])
    with pytest.raises(PipelineError, match="the source cannot be read"):
        runner.start()
    assert runner.router._worker is None and alerts.closed == 1
    assert runner.query is None
    runner.stop()  # idempotent: nothing is closed twice
    assert alerts.closed == 1
