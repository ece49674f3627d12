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
batch-id bookkeeping). A failed background commit fails the next micro-batch.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

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
            for entry in self._spooled():
                self._commit_spooled(entry)
            self._closing = False
            self._worker = threading.Thread(target=self._drain, name="table-sinks", daemon=True)
            self._worker.start()

    def close(self) -> None:
        """Commit everything still spooled, then close every sink."""
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
        self._raise_pending()

    def flush(self) -> None:
        """Block until every spooled batch is committed to the table sinks."""
        with self._cond:
            while self._queue or self._busy:
                self._cond.wait()
        self._raise_pending()

    def pending(self) -> int:
        """Batches spooled but not yet committed to the table sinks."""
        with self._cond:
            return len(self._queue) + int(self._busy)

    def route(self, result: BatchResult, writer: str) -> BatchResult:
        """Deliver ``result``; returns it with the alerts' ``ts_written`` stamped."""
        self._raise_pending()
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
            self._spool(result, writer)
        return result

    # --- spool ------------------------------------------------------------------------------------

    def _spool(self, result: BatchResult, writer: str) -> None:
        assert self.spool_dir is not None
        final = self.spool_dir / f"{result.batch_id:012d}"
        tmp = self.spool_dir / f".{result.batch_id:012d}.tmp"
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

    def _spooled(self) -> list[Path]:
        assert self.spool_dir is not None
        return sorted(p for p in self.spool_dir.iterdir() if p.is_dir() and p.name.isdigit())

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
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                entry = self._queue.pop(0)
                self._busy = True
            try:
                if self._error is None:
                    self._commit_spooled(entry)
            except BaseException as e:  # reported by the next route() or close()
                self._error = e
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _raise_pending(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise SinkError(f"a background table commit failed (the batch stays spooled): {error}") from error
