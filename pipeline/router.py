"""``AlertRouter``: sends one batch's results to the sinks, alerts first.

Alerts go to every ``AlertSink`` first (that write is the end of the latency path ``ts_sent ->
ts_written``), stamped with the time of the first sink's write; then every table, the stamped alerts
included, goes to every ``TableSink``. A sink that fails raises ``SinkError`` and the micro-batch fails:
Spark re-runs it, and the sinks' exactly-once bookkeeping makes that re-run safe.

With a ``spool_dir`` the table writes leave the trigger's critical path: the batch's tables are first
written to a local spool (Arrow IPC files, ``<spool>/<batch id>/<table>.arrow``, renamed into place
when complete), the micro-batch returns, and a background thread commits the spooled batches to the
table sinks in batch order, deleting each spool entry after its commit. Nothing is lost when the
process dies: ``open`` commits whatever is still spooled first (a re-commit is skipped by the sinks'
batch-id bookkeeping). A failed background commit stops the background commits (the failed batch and
every later one stay spooled, in order, and count as pending) and fails the next micro-batch, ``check``
and ``flush``; ``close`` reports it once and the next ``open`` commits what is spooled.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import pyarrow as pa
import pyarrow.ipc as ipc

from pipeline.engine import BatchResult
from pipeline.errors import SinkError
from pipeline.sinks.base import AlertSink, TableSink


class AlertRouter:
    """Routes a ``BatchResult`` to alert sinks and table sinks (directly, or through a spool)."""

    def __init__(
        self,
        alert_sinks: Sequence[AlertSink],
        table_sinks: Sequence[TableSink],
        spool_dir: Path | None = None,
    ) -> None:
        self.alert_sinks = list(alert_sinks)
        self.table_sinks = list(table_sinks)
        self.spool_dir = spool_dir
        self._cond = threading.Condition()
        self._queue: list[Path] = []
        self._busy = False
        self._error: BaseException | None = None
        self._closing = False
        self._worker: threading.Thread | None = None

    def open(self, schemas: dict[str, pa.Schema]) -> None:
        """Open every sink (tables are created here), then commit what an earlier run left spooled."""
        for sink in self.alert_sinks:
            sink.open()
        for table_sink in self.table_sinks:
            table_sink.open(schemas)
        if self.spool_dir is not None:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            self._queue, self._error = [], None
            for entry in self._spooled(self.spool_dir):
                self._commit_spooled(entry)
            self._closing = False
            self._worker = threading.Thread(target=self._drain, name="table-sinks", daemon=True)
            self._worker.start()

    def close(self) -> None:
        """Commit everything still spooled (unless a commit failed), then close every sink; raise
        ``SinkError`` when a background commit failed."""
        if self._worker is not None:
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            self._worker.join()
            self._worker = None
        for sink in self.alert_sinks:
            sink.close()
        for table_sink in self.table_sinks:
            table_sink.close()
        error, self._error = self._error, None
        if error is not None:
            _raise_background(error)

    def flush(self) -> None:
        """Block until every spooled batch is committed to the table sinks; raise ``SinkError`` as soon
        as a background commit failed."""
        with self._cond:
            while (self._queue or self._busy) and self._error is None:
                self._cond.wait()
        self.check()

    def check(self) -> None:
        """Raise ``SinkError`` when a background table commit failed (the router stays failed until
        ``close``)."""
        error = self._error
        if error is not None:
            _raise_background(error)

    def pending(self) -> int:
        """Batches spooled but not yet committed to the table sinks (a failed one included)."""
        with self._cond:
            return len(self._queue) + int(self._busy)

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
        else:
            self._spool(self.spool_dir, result, writer)
        return result

    # --- spool ------------------------------------------------------------------------------------

    def _spool(self, spool_dir: Path, result: BatchResult, writer: str) -> None:
        final = spool_dir / f"{result.batch_id:012d}"
        tmp = spool_dir / f".{result.batch_id:012d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        (tmp / "WRITER").write_text(writer)
        for name, table in result.tables.items():
            if table.num_rows:
                with ipc.new_file(tmp / f"{name}.arrow", table.schema) as out:
                    out.write_table(table)
        shutil.rmtree(final, ignore_errors=True)  # a re-run batch replaces its own uncommitted entry
        tmp.rename(final)
        with self._cond:
            if final not in self._queue:
                self._queue.append(final)
            self._cond.notify_all()

    @staticmethod
    def _spooled(spool_dir: Path) -> list[Path]:
        return sorted(p for p in spool_dir.iterdir() if p.is_dir() and p.name.isdigit())

    def _commit_spooled(self, entry: Path) -> None:
        writer = (entry / "WRITER").read_text()
        tables = {}
        for path in sorted(entry.glob("*.arrow")):
            with ipc.open_file(path) as reader:
                tables[path.stem] = reader.read_all()
        for table_sink in self.table_sinks:
            table_sink.write(int(entry.name), writer, tables)
        shutil.rmtree(entry)

    def _drain(self) -> None:
        while True:
            with self._cond:
                # after a failure nothing more is committed: later batches must not overtake the failed one
                while (not self._queue or self._error is not None) and not self._closing:
                    self._cond.wait()
                if not self._queue or self._error is not None:
                    return
                entry = self._queue.pop(0)
                self._busy = True
            try:
                self._commit_spooled(entry)
            except BaseException as e:  # reported by route(), check(), flush() and close()
                with self._cond:
                    self._queue.insert(0, entry)  # still spooled: pending, and first in line
                    self._error = e
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


def _raise_background(error: BaseException) -> NoReturn:
    raise SinkError(f"a background table commit failed (the batch stays spooled): {error}") from error
