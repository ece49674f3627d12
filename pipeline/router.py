"""``AlertRouter``: sends one batch's results to the sinks, alerts first.

Alerts go to every ``AlertSink`` first (that write is the end of the latency path ``ts_sent ->
ts_written``), stamped with the time of the first sink's write; then every table, the stamped alerts
included, goes to every ``TableSink``. A sink that fails raises ``SinkError`` and the micro-batch fails:
Spark re-runs it, and the sinks' exactly-once bookkeeping makes that re-run safe.

With a ``spool_dir`` the table writes leave the trigger's critical path: the batch's tables are first
written to a local spool (Arrow IPC files, ``<spool>/<batch id>/<table>.arrow``, renamed into place
when complete), the micro-batch returns, and a background thread commits the spooled batches to the
table sinks in batch order, deleting each spool entry after its commit.

The thread commits at most every ``commit_interval_s`` while the stream is busy, each time taking
every batch spooled since (up to ``MAX_GROUP_ROWS`` rows) in one append per table; once nothing was
spooled for ``IDLE_COMMIT_S``, or ``flush`` asks, it commits at once. pyiceberg commits are Python
and hold the interpreter lock the engine needs, so committing back to back slows every trigger
(measured at 1x replay: p50 latency 295 ms committing back to back, 132 ms with the default 2 s
interval), and one snapshot per table and micro-batch would pile up in the tables too.

Nothing is lost when the process dies: ``open`` commits whatever is still spooled first (a re-commit
is skipped by the sinks' batch-id bookkeeping, however the batches are grouped). A failed background
commit stops the background commits (the failed batches and every later one stay spooled, in order,
and count as pending) and fails the next micro-batch, ``check`` and ``flush``; ``close`` reports it
once and the next ``open`` commits what is spooled.

``on_commit`` hears of every commit: the batch ids and the wall time (µs) their rows became visible
(``pipeline.timing``: the freshness of a batch's rows).

The thread commits one table at a time, each in a gap between the stream's foreachBatch calls (the
runner marks each with ``trigger``), and runs a table's maintenance (``TableSink.maintain``, every
``storage.maintenance_every_commits`` commits) in a gap of its own, waiting at most ``MAX_YIELD_S`` for
one: a pyiceberg append is
Python and holds the interpreter lock for tens of ms, and an engine that shares it runs two to three
times slower (measured at 1x replay: a 40-row batch's engine p50 90 ms, 235 ms when a commit ran beside
it, one trigger in six).

The thread reads time and waits through a ``Clock`` (``MonotonicClock`` by default), so tests move time
by hand instead of sleeping.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn, Protocol

import pyarrow as pa
import pyarrow.ipc as ipc

from core.errors import SinkError
from pipeline.engine import BatchResult
from pipeline.sinks.base import AlertSink, TableSink, now_us
from pipeline.tables import TableDef

MAX_GROUP_ROWS: Final = 1_000_000
"""Rows of spooled batches the background thread commits together at most (bounds its memory)."""
MAX_YIELD_S: Final = 1.0
"""The longest the background thread lets one table's commit wait for the running foreachBatch to end
(a stream whose triggers run back to back still gets its tables committed)."""
IDLE_COMMIT_S: Final = 0.5
"""A stream that spooled nothing for this long is idle: what is spooled is committed without waiting
out the commit interval."""


class Clock(Protocol):
    """What the background committer needs from time: a monotonic reading and a wait that ends on a
    notify or once the clock reaches a deadline."""

    def monotonic(self) -> float:
        """Seconds on a monotonic clock (only differences matter)."""

    def wait_until(self, cond: threading.Condition, deadline: float | None) -> None:
        """Wait on ``cond`` (held by the caller) until it is notified or ``monotonic()`` reaches
        ``deadline`` (None: until notified). May return early: callers re-check their condition.

        The deadline is absolute so that a clock which moves between the caller's reading and the
        wait is not missed."""


class MonotonicClock:
    """The real clock: ``time.monotonic`` and the condition's own timed wait."""

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def wait_until(self, cond: threading.Condition, deadline: float | None) -> None:
        """``cond.wait`` for what is left until ``deadline``."""
        cond.wait(None if deadline is None else max(deadline - time.monotonic(), 0.0))


@dataclass(frozen=True)
class _Spooled:
    """One spooled batch: its directory and what grouping needs, kept in memory (no disk reads under
    the lock)."""

    path: Path
    batch_id: int
    writer: str
    rows: int
    seq: int
    """Order of spooling in this router's life (``flush`` hurries everything up to a ``seq``)."""


class AlertRouter:
    """Routes a ``BatchResult`` to alert sinks and table sinks (directly, or through a spool)."""

    def __init__(
        self,
        alert_sinks: Sequence[AlertSink],
        table_sinks: Sequence[TableSink],
        spool_dir: Path | None = None,
        commit_interval_s: float = 0.0,
        clock: Clock | None = None,
        on_commit: Callable[[Sequence[int], int], None] | None = None,
    ) -> None:
        self.alert_sinks = list(alert_sinks)
        self.table_sinks = list(table_sinks)
        self.spool_dir = spool_dir
        self.commit_interval_s = commit_interval_s
        self.clock = clock or MonotonicClock()
        self.on_commit = on_commit
        self._cond = threading.Condition()
        self._queue: list[_Spooled] = []
        self._inflight: list[_Spooled] = []
        self._seq = 0
        self._hurry_until = -1
        self._last_spool = self.clock.monotonic()
        self._committed = self._last_spool
        self._error: BaseException | None = None
        self._closing = False
        self._triggers = 0
        self._worker: threading.Thread | None = None

    def open(self, tables: Sequence[TableDef]) -> None:
        """Open every sink (tables are created here), then commit what an earlier run left spooled."""
        for sink in self.alert_sinks:
            sink.open()
        for table_sink in self.table_sinks:
            table_sink.open(tables)
            if self.spool_dir is not None:  # only the background thread may wait for a gap
                table_sink.before_maintenance = self._await_gap
        if self.spool_dir is not None:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            self._queue, self._inflight, self._error = [], [], None
            left = [self._entry(path, _read_text(path / "WRITER"), _read_rows(path))
                    for path in self._spooled(self.spool_dir)]
            while left:
                group = _first_group(left)
                self._commit_spooled(group)
                del left[: len(group)]
            self._closing = False
            self._worker = threading.Thread(target=self._drain, name="table-sinks", daemon=True)
            self._worker.start()

    def close(self) -> None:
        """Commit everything still spooled (unless a commit failed), then close every sink; raise
        ``SinkError`` when a background commit failed (its batches stay on disk for the next ``open``)."""
        if self._worker is not None:
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            self._worker.join()
            self._worker = None
        with self._cond:
            self._queue, self._inflight = [], []
        for sink in self.alert_sinks:
            sink.close()
        for table_sink in self.table_sinks:
            table_sink.close()
        error, self._error = self._error, None
        if error is not None:
            _raise_background(error)

    def flush(self) -> None:
        """Block until every batch spooled so far is committed to the table sinks (without waiting out
        the commit interval); raise ``SinkError`` as soon as a background commit failed."""
        with self._cond:
            self._hurry_until = self._seq
            self._cond.notify_all()
            while (self._queue or self._inflight) and self._error is None and self._working():
                self._cond.wait(1.0)  # real time, not the clock's: only polls whether the worker died
        self.check()

    def _working(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def check(self) -> None:
        """Raise ``SinkError`` when a background table commit failed (the router stays failed until
        ``close``)."""
        error = self._error
        if error is not None:
            _raise_background(error)

    def pending(self) -> int:
        """Batches spooled but not yet committed to the table sinks (failed ones included)."""
        with self._cond:
            return len(self._queue) + len(self._inflight)

    @contextmanager
    def trigger(self) -> Iterator[None]:
        """Mark a foreachBatch call running: the background thread starts no table commit meanwhile
        (for at most ``MAX_YIELD_S``)."""
        with self._cond:
            self._triggers += 1
        try:
            yield
        finally:
            with self._cond:
                self._triggers -= 1
                self._cond.notify_all()

    def route(self, result: BatchResult, writer: str) -> BatchResult:
        """Deliver ``result``; returns it with the alerts' ``ts_written`` stamped."""
        self.check()
        alerts = result.alerts
        stamped = alerts
        for i, sink in enumerate(self.alert_sinks):
            out = sink.write_alerts(alerts)
            if i == 0:
                stamped = out
        result.tables["alerts"] = stamped
        if self.spool_dir is None:
            for table_sink in self.table_sinks:
                table_sink.write(result.batch_id, writer, result.tables)
            self._committed_batches([result.batch_id])
        else:
            self._spool(self.spool_dir, result, writer)
        return result

    # --- spool ------------------------------------------------------------------------------------

    def _entry(self, path: Path, writer: str, rows: int) -> _Spooled:
        self._seq += 1
        return _Spooled(path=path, batch_id=int(path.name), writer=writer, rows=rows, seq=self._seq)

    def _spool(self, spool_dir: Path, result: BatchResult, writer: str) -> None:
        with self._cond:
            waiting = {(e.batch_id, e.writer) for e in self._queue + self._inflight}
        if (result.batch_id, writer) in waiting:
            # Spark re-ran a batch whose tables are still spooled: the same rows (its alerts stamped at
            # their first, kept DynamoDB write), and the entry may be being read right now
            return
        final = spool_dir / f"{result.batch_id:012d}"
        tmp = spool_dir / f".{result.batch_id:012d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        rows = sum(t.num_rows for t in result.tables.values())
        (tmp / "WRITER").write_text(writer)
        (tmp / "ROWS").write_text(str(rows))
        for name, table in result.tables.items():
            if table.num_rows:
                with ipc.new_file(tmp / f"{name}.arrow", table.schema) as out:
                    out.write_table(table)
        shutil.rmtree(final, ignore_errors=True)  # left by a crash after its commit: the sinks skip it
        tmp.rename(final)
        with self._cond:
            self._queue.append(self._entry(final, writer, rows))
            self._last_spool = self.clock.monotonic()
            self._cond.notify_all()

    @staticmethod
    def _spooled(spool_dir: Path) -> list[Path]:
        return sorted(p for p in spool_dir.iterdir() if p.is_dir() and p.name.isdigit())

    def _commit_spooled(self, group: list[_Spooled]) -> None:
        """Commit spooled batches of one writer together, a table at a time between triggers, then
        delete them."""
        batches = [(entry.batch_id, _read_spooled(entry.path)) for entry in group]
        for name in dict.fromkeys(name for _, tables in batches for name in tables):
            self._await_gap()
            # tables commit independently (each append is its own atomic commit and batch marker), so
            # one table at a time is the same as every table in one call
            part = [(batch_id, {name: tables[name]}) for batch_id, tables in batches if name in tables]
            for table_sink in self.table_sinks:
                table_sink.write_batches(group[0].writer, part)
        self._committed_batches([batch_id for batch_id, _ in batches])
        for entry in group:
            shutil.rmtree(entry.path)

    def _committed_batches(self, batch_ids: Sequence[int]) -> None:
        """Tell ``on_commit`` that ``batch_ids``' tables are committed (their rows visible) now."""
        if self.on_commit is not None:
            self.on_commit(batch_ids, now_us())

    def _await_gap(self) -> None:
        """Wait until no foreachBatch call runs, at most ``MAX_YIELD_S`` (not while closing)."""
        with self._cond:
            deadline = self.clock.monotonic() + MAX_YIELD_S
            while self._triggers and not self._closing and self.clock.monotonic() < deadline:
                self.clock.wait_until(self._cond, deadline)

    def _wait_for_group(self) -> list[_Spooled] | None:
        """Under the lock: the next group once it is due (None: stop). Due means the interval since the
        last commit passed, the stream went idle, ``flush`` asked for it, or the router is closing."""
        while True:
            if self._error is not None or not self._queue:
                # after a failure nothing more is committed: later batches must not overtake the failed one
                if self._closing:
                    return None
                self.clock.wait_until(self._cond, None)
                continue
            now = self.clock.monotonic()
            due = min(self._committed + self.commit_interval_s, self._last_spool + IDLE_COMMIT_S)
            if self._closing or self._queue[0].seq <= self._hurry_until or now >= due:
                return _first_group(self._queue)
            self.clock.wait_until(self._cond, due)

    def _drain(self) -> None:
        self._committed = self.clock.monotonic()
        while True:
            with self._cond:
                group = self._wait_for_group()
                if group is None:
                    return
                del self._queue[: len(group)]
                self._inflight = group
            try:
                self._commit_spooled(group)
            except BaseException as e:  # reported by route(), check(), flush() and close()
                with self._cond:
                    self._queue[:0] = group  # still spooled: pending, and first in line
                    self._error = e
            finally:
                self._committed = self.clock.monotonic()
                with self._cond:
                    self._inflight = []
                    self._cond.notify_all()


def _read_spooled(entry: Path) -> dict[str, pa.Table]:
    tables = {}
    for path in sorted(entry.glob("*.arrow")):
        with ipc.open_file(path) as reader:
            tables[path.stem] = reader.read_all()
    return tables


def _first_group(entries: list[_Spooled]) -> list[_Spooled]:
    """The leading spooled batches of one writer, at most ``MAX_GROUP_ROWS`` rows (at least one)."""
    group = [entries[0]]
    rows = entries[0].rows
    for entry in entries[1:]:
        if entry.writer != group[0].writer or rows + entry.rows > MAX_GROUP_ROWS:
            break
        group.append(entry)
        rows += entry.rows
    return group


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as e:
        raise SinkError(f"spool entry {path.parent} is incomplete ({e}); move it away to go on") from e


def _read_rows(entry: Path) -> int:
    return int(_read_text(entry / "ROWS"))


def _raise_background(error: BaseException) -> NoReturn:
    raise SinkError(f"a background table commit failed (the batch stays spooled): {error}") from error
