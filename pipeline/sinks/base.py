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

import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar, Final

import pyarrow as pa

from core.errors import SinkError
from pipeline.alerts import ALERT_SCHEMA
from pipeline.tables import TableDef

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

BATCH_PROPERTY: Final = "coattail.batch-id"
WRITER_PROPERTY: Final = "coattail.writer"


def now_us() -> int:
    """Wall-clock time in µs (only for latency stamps, never for event time)."""
    return time.time_ns() // 1_000


def _go_on() -> None:
    """Wait for nothing (the default ``TableSink.before_maintenance``)."""


class TableSink(ABC):
    """Writes a batch's tables, each batch at most once per writer. Use as a context manager."""

    name: ClassVar[str]
    maintain_every_default: ClassVar[int] = 0
    """Commits to a table between two runs of ``maintain`` when the configuration names none."""

    def __init__(self, maintain_every: int | None = None) -> None:
        self._last: dict[tuple[str, str], int | None] = {}
        self.definitions: dict[str, TableDef] = {}
        self.maintain_every = self.maintain_every_default if maintain_every is None else maintain_every
        """Commits to a table between two runs of ``maintain`` on it (0: never)."""
        self.before_maintenance: Callable[[], None] = _go_on
        """Called just before each ``maintain`` run: a committer that yields to other work between
        commits (``pipeline.router``) waits here for its next gap, so maintenance gets a gap of its own
        instead of stretching the commit it follows."""
        self._since_maintenance: dict[str, int] = {}

    def open(self, tables: Iterable[TableDef]) -> None:
        """Prepare (create if missing) every table the pipeline will write, from its definition."""
        self.definitions = {table.name: table for table in tables}
        for table in self.definitions.values():
            self._create(table)

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections; the default has nothing to release."""

    def write(self, batch_id: int, writer: str, tables: Mapping[str, pa.Table]) -> dict[str, bool]:
        """Commit each non-empty table of batch ``batch_id``; returns table -> written (False: skipped)."""
        return self.write_batches(writer, [(batch_id, tables)])

    def write_batches(
        self, writer: str, batches: Sequence[tuple[int, Mapping[str, pa.Table]]]
    ) -> dict[str, bool]:
        """Commit several batches of one writer together: per table, the rows of every batch above the
        last one the table holds, in one append recorded under the highest of those batch ids.

        Whichever way batches are grouped, a batch at or below a table's last committed id is skipped
        for that table, so a regrouped retry never writes rows twice. Fewer, larger commits keep a
        busy stream's tables from piling up one snapshot per table and micro-batch.
        """
        ids = [bid for bid, _ in batches]
        if any(a >= b for a, b in itertools.pairwise(ids)):
            raise SinkError(f"batches must come in ascending batch id order, once each: {ids}")
        written: dict[str, bool] = {}
        names = list(dict.fromkeys(name for _, tables in batches for name in tables))
        for table in names:
            parts = [(bid, tables[table]) for bid, tables in batches if tables.get(table) is not None]
            parts = [(bid, data) for bid, data in parts if data.num_rows]
            if not parts:
                continue
            fresh = [(bid, data) for bid, data in parts if not self.holds(table, writer, bid)]
            if not fresh:
                written[table] = False
                continue
            data = pa.concat_tables([d for _, d in fresh]) if len(fresh) > 1 else fresh[0][1]
            top = max(bid for bid, _ in fresh)
            self.append_marked(table, writer, top, partial(self._append, table, data))
            written[table] = True
        return written

    def holds(self, table: str, writer: str, batch_id: int) -> bool:
        """Whether ``table`` holds ``writer``'s batch ``batch_id`` already (a re-run's batch is skipped)."""
        key = (table, writer)
        if key not in self._last:
            self._last[key] = self._last_committed(table, writer)
        last = self._last[key]
        return last is not None and batch_id <= last

    def append_marked(
        self, table: str, writer: str, batch_id: int, append: Callable[[dict[str, str]], None]
    ) -> None:
        """Run ``append(properties)``: one atomic commit of rows with the marker of ``writer``'s batch
        ``batch_id`` (ask ``holds`` first); remember the marker and count the commit for maintenance."""
        key = (table, writer)
        try:
            append({BATCH_PROPERTY: str(batch_id), WRITER_PROPERTY: writer})
        except BaseException:
            # the commit may have landed before the error (a lost response): let the retry ask the
            # backend again instead of trusting the cached batch id and appending a second copy
            self._last.pop(key, None)
            raise
        self._last[key] = batch_id
        self._count_commit(table)

    def _count_commit(self, table: str) -> None:
        """Run ``maintain`` on ``table`` once ``maintain_every`` commits have gone to it."""
        count = self._since_maintenance.get(table, 0) + 1
        if self.maintain_every and count >= self.maintain_every:
            self.before_maintenance()
            self.maintain(table)
            count = 0
        self._since_maintenance[table] = count

    def maintain(self, table: str) -> dict[str, int]:
        """Compact ``table``'s small files and drop what old versions keep alive, keeping every batch
        marker ``_last_committed`` reads; returns what it did (counts by name). The default: nothing to
        do (a backend whose tables need no upkeep, or that leaves it to a Spark-written twin)."""
        return {}

    def writers(self, table: str) -> set[str]:
        """Every writer that committed rows to ``table`` (an opened one)."""
        return self._writers(table)

    def where(self, table: str) -> str:
        """Where ``table`` lives, for messages."""
        return f"{self.name} table {table}"

    @abstractmethod
    def _create(self, table: TableDef) -> None:
        """Create ``table`` unless it exists."""

    @abstractmethod
    def _writers(self, table: str) -> set[str]:
        """The writers recorded with ``table``'s commits."""

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


class MarkedTableSink(TableSink):
    """A table sink whose backend reads every writer's last batch of a table in one go (``_markers``)."""

    @abstractmethod
    def _markers(self, table: str) -> dict[str, int]:
        """Writer -> the highest batch id it committed to ``table``."""

    def _last_committed(self, table: str, writer: str) -> int | None:
        return self._markers(table).get(writer)

    def _writers(self, table: str) -> set[str]:
        return set(self._markers(table))


class FrameTableSink(MarkedTableSink):
    """A table sink that also appends a Spark DataFrame's rows, written where they are (the executors),
    under the same exactly-once bookkeeping (``pipeline.keyed_writes``)."""

    def write_frame(self, batch_id: int, writer: str, table: str, frame: DataFrame) -> bool:
        """Append ``frame`` (rows of ``table``'s stored schema) as ``writer``'s batch ``batch_id``, unless
        the table holds that batch; returns whether it was written."""
        if self.holds(table, writer, batch_id):
            return False
        self.append_marked(table, writer, batch_id, partial(self._append_frame, table, frame))
        return True

    @abstractmethod
    def _append_frame(self, table: str, frame: DataFrame, properties: dict[str, str]) -> None:
        """Append ``frame`` and ``properties`` in one atomic commit."""


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
