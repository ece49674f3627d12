"""Sink contracts. The base classes own the lifecycle and the exactly-once bookkeeping; a backend
implements two or three small methods.

``TableSink`` receives every table of a batch (``trades``, ``quotes``, ``quarantine``, ``alerts`` and
the detectors' metric tables) and writes each table's rows of batch ``N`` exactly once per writer
(the streaming query's id, or a batch run's id): the backend records ``(writer, N)`` with the data in
one atomic commit and reports the last batch it holds, and the base skips any batch at or below it.

``AlertSink`` receives the batch's alerts only, writes each ``alert_id`` at most once (whatever the
batch), and returns the alerts stamped with ``ts_written``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import TracebackType
from typing import ClassVar, Final

import pyarrow as pa

from pipeline.alerts import ALERT_SCHEMA

BATCH_PROPERTY: Final = "coattail.batch-id"
WRITER_PROPERTY: Final = "coattail.writer"


def now_us() -> int:
    """Wall-clock time in µs (only for latency stamps, never for event time)."""
    return time.time_ns() // 1_000


class TableSink(ABC):
    """Writes a batch's tables, each batch at most once per writer. Use as a context manager."""

    name: ClassVar[str]

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], int | None] = {}
        self.schemas: dict[str, pa.Schema] = {}

    def open(self, schemas: Mapping[str, pa.Schema]) -> None:
        """Prepare (create if missing) every table the pipeline will write."""
        self.schemas = dict(schemas)
        for table, schema in self.schemas.items():
            self._create(table, schema)

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections; the default has nothing to release."""

    def write(self, batch_id: int, writer: str, tables: Mapping[str, pa.Table]) -> dict[str, bool]:
        """Commit each non-empty table of batch ``batch_id``; returns table -> written (False: skipped)."""
        written: dict[str, bool] = {}
        for table, data in tables.items():
            if data.num_rows == 0:
                continue
            key = (table, writer)
            if key not in self._last:
                self._last[key] = self._last_committed(table, writer)
            last = self._last[key]
            if last is not None and batch_id <= last:
                written[table] = False
                continue
            try:
                self._append(table, data, {BATCH_PROPERTY: str(batch_id), WRITER_PROPERTY: writer})
            except BaseException:
                # the commit may have landed before the error (a lost response): let the retry ask the
                # backend again instead of trusting the cached batch id and appending a second copy
                self._last.pop(key, None)
                raise
            self._last[key] = batch_id
            written[table] = True
        return written

    @abstractmethod
    def _create(self, table: str, schema: pa.Schema) -> None:
        """Create ``table`` unless it exists."""

    @abstractmethod
    def _last_committed(self, table: str, writer: str) -> int | None:
        """The highest batch id ``writer`` committed to ``table`` (None when none)."""

    @abstractmethod
    def _append(self, table: str, data: pa.Table, properties: dict[str, str]) -> None:
        """Append ``data`` and ``properties`` in one atomic commit."""

    def __enter__(self) -> TableSink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AlertSink(ABC):
    """Delivers alerts, each ``alert_id`` at most once; stamps ``ts_written``."""

    name: ClassVar[str]

    def open(self) -> None:  # noqa: B027 (optional hook)
        """Check or prepare the destination; the default does nothing."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections; the default has nothing to release."""

    def write_alerts(self, alerts: pa.Table) -> pa.Table:
        """Write the alerts not written before; returns all of them with ``ts_written`` set."""
        if alerts.num_rows == 0:
            return alerts
        stamps = self._put(alerts.to_pylist())
        index = ALERT_SCHEMA.get_field_index("ts_written")
        return alerts.set_column(index, ALERT_SCHEMA.field(index), pa.array(stamps, type=pa.int64()))

    @abstractmethod
    def _put(self, rows: list[dict[str, object]]) -> list[int]:
        """Write rows (ALERT_SCHEMA dicts) conditionally on ``alert_id``; return each row's ts_written."""
