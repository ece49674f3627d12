"""The router: alerts before tables, and the table spool that survives a crash."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.errors import SinkError
from pipeline.router import AlertRouter
from pipeline.runner import PipelineRunner
from pipeline.sinks.memory import MemoryAlertSink, MemoryTableSink
from pipeline.testkit import T0, run_engine, small_config, trade

CFG = small_config()


def _schemas(tmp: Path) -> dict[str, pa.Schema]:
    return PipelineRunner(CFG, checkpoint=tmp / "unused", table_sinks=[MemoryTableSink()],
                          alert_sinks=[MemoryAlertSink()]).table_schemas()


def test_spooled_batches_are_committed_in_order_and_survive_a_crash(tmp_path: Path) -> None:
    results = run_engine(CFG, [trade(1, 50_000.0, 30.0, T0), trade(2, 1.0, 1.0, T0 + 1)], cuts=[1])
    schemas = _schemas(tmp_path)
    tables, alerts = MemoryTableSink(), MemoryAlertSink()
    crashed = AlertRouter([alerts], [tables], spool_dir=tmp_path / "spool")
    crashed.open(schemas)
    assert crashed._worker is not None
    # the process "dies" before its worker commits anything: stop the worker first
    with crashed._cond:
        crashed._closing = True
        crashed._cond.notify_all()
    crashed._worker.join()
    for r in results:
        crashed.route(r, "query:x")
    assert crashed.pending() == 2 and tables.read("trades").num_rows == 0
    assert len(alerts.items) == 1  # alerts are written at once, not spooled

    fresh = MemoryTableSink()
    restarted = AlertRouter([MemoryAlertSink()], [fresh], spool_dir=tmp_path / "spool")
    restarted.open(schemas)
    restarted.route(results[1], "query:x")  # Spark re-runs the last batch: no second copy
    restarted.close()
    assert [p["coattail.batch-id"] for p, _ in fresh.commits["trades"]] == ["0", "1"]
    assert fresh.read("trades").num_rows == 2
    assert fresh.read("alerts").column("ts_written").null_count == 0
    assert not any((tmp_path / "spool").iterdir())


class _FailingTableSink(MemoryTableSink):
    """Fails every commit of one batch (a table sink that is down for it), once ``release`` is set."""

    def __init__(self, failing_batch: int) -> None:
        super().__init__()
        self.failing_batch = failing_batch
        self.release = threading.Event()

    def write(self, batch_id: int, writer: str, tables: Mapping[str, pa.Table]) -> dict[str, bool]:
        if batch_id == self.failing_batch:
            self.release.wait(timeout=60)
            raise SinkError(f"batch {batch_id} cannot be committed")
        return super().write(batch_id, writer, tables)


def test_a_failed_background_commit_stays_pending_and_blocks_later_batches(tmp_path: Path) -> None:
    results = run_engine(CFG, [trade(1, 50_000.0, 30.0, T0), trade(2, 1.0, 1.0, T0 + 1)], cuts=[1])
    schemas = _schemas(tmp_path)
    broken = _FailingTableSink(failing_batch=0)
    router = AlertRouter([MemoryAlertSink()], [broken], spool_dir=tmp_path / "spool")
    router.open(schemas)
    for r in results:
        router.route(r, "query:x")
    broken.release.set()  # both batches are spooled before the first commit fails
    with pytest.raises(SinkError, match="batch 0 cannot be committed"):
        router.flush()
    # batch 1 must not overtake batch 0, and neither counts as done
    assert router.pending() == 2 and not any(broken.commits.values())
    with pytest.raises(SinkError):
        router.check()
    with pytest.raises(SinkError):
        router.route(results[1], "query:x")
    with pytest.raises(SinkError):
        router.close()

    fresh = MemoryTableSink()
    restarted = AlertRouter([MemoryAlertSink()], [fresh], spool_dir=tmp_path / "spool")
    restarted.open(schemas)
    restarted.close()
    assert [p["coattail.batch-id"] for p, _ in fresh.commits["trades"]] == ["0", "1"]
