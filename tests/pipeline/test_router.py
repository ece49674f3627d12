"""The router: alerts before tables, and the table spool that survives a crash."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import SinkError
from pipeline.router import IDLE_COMMIT_S, MAX_YIELD_S, AlertRouter
from pipeline.runner import PipelineRunner
from pipeline.sinks.memory import MemoryAlertSink, MemoryTableSink
from pipeline.tables import TableDef
from pipeline.testkit import T0, ManualClock, run_engine, small_config, trade

CFG = small_config()


def _tables(tmp: Path) -> tuple[TableDef, ...]:
    return PipelineRunner(CFG, checkpoint=tmp / "unused", table_sinks=[MemoryTableSink()],
                          alert_sinks=[MemoryAlertSink()]).tables()


def test_spooled_batches_are_committed_in_order_and_survive_a_crash(tmp_path: Path) -> None:
    results = run_engine(CFG, [trade(1, 50_000.0, 30.0, T0), trade(2, 1.0, 1.0, T0 + 1)], cuts=[1])
    defs = _tables(tmp_path)
    tables, alerts = MemoryTableSink(), MemoryAlertSink()
    crashed = AlertRouter([alerts], [tables], spool_dir=tmp_path / "spool")
    crashed.open(defs)
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
    restarted.open(defs)
    restarted.route(results[1], "query:x")  # Spark re-runs the last batch: no second copy
    restarted.close()
    # both spooled batches went in one commit, recorded under the later batch id
    assert [p["coattail.batch-id"] for p, _ in fresh.commits["trades"]] == ["1"]
    assert fresh.read("trades").num_rows == 2
    assert fresh.read("alerts").column("ts_written").null_count == 0
    assert not any((tmp_path / "spool").iterdir())


class _FailingTableSink(MemoryTableSink):
    """Fails every commit of one batch (a table sink that is down for it), once ``release`` is set."""

    def __init__(self, failing_batch: int) -> None:
        super().__init__()
        self.failing_batch = failing_batch
        self.release = threading.Event()

    def write_batches(
        self, writer: str, batches: Sequence[tuple[int, Mapping[str, pa.Table]]]
    ) -> dict[str, bool]:
        if any(batch_id == self.failing_batch for batch_id, _ in batches):
            self.release.wait(timeout=60)
            raise SinkError(f"batch {self.failing_batch} cannot be committed")
        return super().write_batches(writer, batches)


def test_a_failed_background_commit_stays_pending_and_blocks_later_batches(tmp_path: Path) -> None:
    results = run_engine(CFG, [trade(1, 50_000.0, 30.0, T0), trade(2, 1.0, 1.0, T0 + 1)], cuts=[1])
    defs = _tables(tmp_path)
    broken = _FailingTableSink(failing_batch=0)
    router = AlertRouter([MemoryAlertSink()], [broken], spool_dir=tmp_path / "spool")
    router.open(defs)
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
    restarted.open(defs)
    restarted.close()
    assert [p["coattail.batch-id"] for p, _ in fresh.commits["trades"]] == ["1"]
    assert fresh.read("trades").num_rows == 2


def _held_router(
    tmp_path: Path, commit_interval_s: float = 60.0, clock: ManualClock | None = None
) -> tuple[AlertRouter, MemoryTableSink, MemoryAlertSink]:
    tables, alerts = MemoryTableSink(), MemoryAlertSink()
    router = AlertRouter([alerts], [tables], spool_dir=tmp_path / "spool",
                         commit_interval_s=commit_interval_s, clock=clock)
    router.open(_tables(tmp_path))
    return router, tables, alerts


def _commit_ids(tables: MemoryTableSink) -> list[str]:
    return [p["coattail.batch-id"] for p, _ in tables.commits["trades"]]


# A power of two: the manual clock's sums stay exact, so "exactly IDLE_COMMIT_S later" is exact.
STEP_S = IDLE_COMMIT_S / 4


def test_a_busy_stream_holds_table_commits_and_an_idle_one_commits_them_together(tmp_path: Path) -> None:
    results = run_engine(CFG, [trade(i, 50_000.0 if i == 1 else 1.0, 30.0, T0 + i) for i in range(1, 13)],
                         cuts=list(range(1, 12)))
    clock = ManualClock(waiters=1)
    router, tables, alerts = _held_router(tmp_path, clock=clock)
    router.flush()  # on an empty spool: must not let the next batches skip the interval
    for r in results:  # a busy stream: a batch every STEP_S, never idle for IDLE_COMMIT_S
        router.route(r, "query:x")
        clock.advance(STEP_S)  # returns once the committer has looked at the new time
        assert not tables.commits["trades"]
    assert router.pending() == 12 and len(alerts.items) == 1  # the latency path does not wait
    clock.advance(IDLE_COMMIT_S - 2 * STEP_S)  # one step short of idle
    assert router.pending() == 12 and not tables.commits["trades"]
    clock.advance(STEP_S)  # idle for exactly IDLE_COMMIT_S now: everything in one commit
    assert router.pending() == 0 and _commit_ids(tables) == ["11"]
    assert tables.read("trades").num_rows == 12
    router.route(run_engine(CFG, [trade(20, 1.0, 1.0, T0 + 20)])[0], "query:y")
    router.flush()  # does not wait the interval out (the clock does not move)
    assert router.pending() == 0 and tables.read("trades").num_rows == 13
    router.close()


def test_a_busy_stream_commits_once_every_commit_interval(tmp_path: Path) -> None:
    results = run_engine(CFG, [trade(i, 1.0, 1.0, T0 + i) for i in range(16)], cuts=list(range(1, 16)))
    clock = ManualClock(waiters=1)
    router, tables, _ = _held_router(tmp_path, commit_interval_s=8 * STEP_S, clock=clock)
    for i, r in enumerate(results):  # busy: a batch every STEP_S, the interval is 8 of them
        router.route(r, "query:x")
        clock.advance(STEP_S)
        # a commit exactly when 8 steps passed since the last one, taking every batch spooled since
        assert _commit_ids(tables) == [str(b) for b in (7, 15) if b <= i]
    assert router.pending() == 0 and tables.read("trades").num_rows == 16
    router.close()


def test_a_table_commit_waits_for_the_running_trigger_to_end(tmp_path: Path) -> None:
    result = run_engine(CFG, [trade(1, 50_000.0, 30.0, T0)])[0]
    clock = ManualClock(waiters=1)
    router, tables, _ = _held_router(tmp_path, clock=clock)
    with router.trigger():  # a foreachBatch call runs, holding the interpreter lock the engine needs
        router.route(result, "query:x")
        clock.advance(IDLE_COMMIT_S)  # due now, yet nothing is committed beside the running trigger
        clock.advance(MAX_YIELD_S - STEP_S)
        assert router.pending() == 1 and not tables.commits["trades"]
    router.flush()  # the trigger ended: the committer goes on at once, without the clock moving
    assert _commit_ids(tables) == ["0"] and router.pending() == 0
    router.close()


def test_triggers_back_to_back_delay_each_table_commit_at_most_max_yield(tmp_path: Path) -> None:
    result = run_engine(CFG, [trade(1, 50_000.0, 30.0, T0)])[0]
    written = [name for name, table in result.tables.items() if table.num_rows]
    clock = ManualClock(waiters=1)
    router, tables, _ = _held_router(tmp_path, clock=clock)
    with router.trigger():  # one trigger that never ends
        router.route(result, "query:x")
        clock.advance(IDLE_COMMIT_S)
        for i in range(len(written)):  # one table per MAX_YIELD_S
            assert sum(len(tables.commits[name]) for name in written) == i
            clock.advance(MAX_YIELD_S)
        assert router.pending() == 0
        assert all(tables.read(name).num_rows == result.tables[name].num_rows for name in written)
    router.close()


class _MaintainedTableSink(MemoryTableSink):
    """Maintains a table after every commit to it, and records each run."""

    def __init__(self) -> None:
        super().__init__()
        self.maintain_every = 1
        self.maintained: list[str] = []

    def maintain(self, table: str) -> dict[str, int]:
        self.maintained.append(table)
        return {}


def test_a_table_maintenance_waits_for_a_gap_of_its_own(tmp_path: Path) -> None:
    result = run_engine(CFG, [trade(1, 50_000.0, 30.0, T0)])[0]
    written = [name for name, table in result.tables.items() if table.num_rows]
    clock = ManualClock(waiters=1)
    tables = _MaintainedTableSink()
    router = AlertRouter([MemoryAlertSink()], [tables], spool_dir=tmp_path / "spool", commit_interval_s=60.0,
                         clock=clock)
    router.open(_tables(tmp_path))
    with router.trigger():  # one trigger that never ends
        router.route(result, "query:x")
        clock.advance(IDLE_COMMIT_S)
        for i in range(2 * len(written)):  # a commit, then that table's maintenance: one per MAX_YIELD_S
            assert sum(len(tables.commits[name]) for name in written) + len(tables.maintained) == i
            clock.advance(MAX_YIELD_S)
        assert sorted(tables.maintained) == sorted(written) and router.pending() == 0
    router.close()


def test_a_batch_spooled_again_while_waiting_is_committed_once(tmp_path: Path) -> None:
    result = run_engine(CFG, [trade(1, 50_000.0, 30.0, T0)])[0]
    router, tables, _ = _held_router(tmp_path)
    router.route(result, "query:x")
    router.route(result, "query:x")  # Spark re-ran the batch before its tables were committed
    assert router.pending() == 1
    router.flush()
    assert tables.read("trades").num_rows == 1
    router.close()


def test_an_unreadable_spool_entry_fails_flush_instead_of_hanging(tmp_path: Path) -> None:
    result = run_engine(CFG, [trade(1, 50_000.0, 30.0, T0)])[0]
    router, _, _ = _held_router(tmp_path)
    router.route(result, "query:x")
    (tmp_path / "spool" / f"{0:012d}" / "trades.arrow").write_bytes(b"not arrow")
    with pytest.raises(SinkError, match="background table commit failed"):
        router.flush()
    with pytest.raises(SinkError):
        router.close()
    router.flush()  # closed: returns at once
    assert router.pending() == 0


def _batch_rows(batch_id: int, rows: int) -> dict[str, pa.Table]:
    return {"t": pa.table({"batch": [batch_id] * rows, "row": list(range(rows))})}


@settings(max_examples=60)
@given(
    sizes=st.lists(st.integers(0, 3), min_size=1, max_size=8),
    deliveries=st.lists(st.tuples(st.integers(0, 7), st.integers(1, 8)), min_size=1, max_size=10),
)
def test_any_grouping_and_redelivery_of_batches_commits_each_batch_once(
    sizes: list[int], deliveries: list[tuple[int, int]]
) -> None:
    """Groups of consecutive batches delivered in order, some again (a retry or a restart regrouping
    what was spooled): each batch's rows end up in the table exactly once."""
    sink = MemoryTableSink()
    schema = pa.schema([("batch", pa.int64()), ("row", pa.int64())])
    sink.open([TableDef(name="t", schema=schema, key=("batch", "row"), description="test rows")])
    batches = [(i, _batch_rows(i, n)) for i, n in enumerate(sizes)]
    done = 0
    for start, length in deliveries:  # a delivery starts at or before the first batch not yet delivered
        first = min(start, done)
        group = batches[first : first + length]
        sink.write_batches("query:x", group)
        done = max(done, first + len(group))
    sink.write_batches("query:x", batches)  # whatever was never delivered
    rows = sorted(zip(*sink.read("t").to_pydict().values(), strict=True))
    assert rows == sorted((i, r) for i, n in enumerate(sizes) for r in range(n))


@pytest.mark.parametrize("spooled", [True, False])
def test_every_commit_is_reported_once_with_its_batches(tmp_path: Path, spooled: bool) -> None:
    """``on_commit`` (the rows' freshness): each batch id once, after its rows are in the table sink."""
    results = run_engine(CFG, [trade(i, 100.0, 1.0, T0 + i) for i in range(4)], cuts=[1, 2, 3])
    tables = MemoryTableSink()
    heard: list[tuple[list[int], int, int]] = []

    def on_commit(batch_ids: Sequence[int], at_us: int) -> None:
        heard.append((list(batch_ids), at_us, tables.read("trades").num_rows))

    router = AlertRouter([MemoryAlertSink()], [tables], spool_dir=tmp_path / "spool" if spooled else None,
                         on_commit=on_commit)
    router.open(_tables(tmp_path))
    for r in results:
        router.route(r, "query:x")
    router.flush()
    router.close()
    assert sorted(b for ids, _, _ in heard for b in ids) == [0, 1, 2, 3]
    assert all(rows >= max(ids) + 1 for ids, _, rows in heard)  # committed before it is reported
    assert [at for _, at, _ in heard] == sorted(at for _, at, _ in heard)
