"""In-memory sinks for tests and batch comparisons: same contracts as the real backends."""

from __future__ import annotations

from typing import ClassVar

import pyarrow as pa

from pipeline.sinks.base import BATCH_PROPERTY, WRITER_PROPERTY, AlertSink, TableSink, now_us
from pipeline.tables import TableDef


class MemoryTableSink(TableSink):
    """Keeps every committed table in memory, with the commit properties."""

    name: ClassVar[str] = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.commits: dict[str, list[tuple[dict[str, str], pa.Table]]] = {}

    def _create(self, table: TableDef) -> None:
        self.commits.setdefault(table.name, [])

    def _last_committed(self, table: str, writer: str) -> int | None:
        ids = [int(p[BATCH_PROPERTY]) for p, _ in self.commits.get(table, []) if p[WRITER_PROPERTY] == writer]
        return max(ids) if ids else None

    def _writers(self, table: str) -> set[str]:
        return {p[WRITER_PROPERTY] for p, _ in self.commits.get(table, [])}

    def _append(self, table: str, data: pa.Table, properties: dict[str, str]) -> None:
        self.commits.setdefault(table, []).append((properties, data))

    def read(self, table: str) -> pa.Table:
        """Everything committed to ``table``."""
        parts = [data for _, data in self.commits.get(table, [])]
        if parts:
            return pa.concat_tables(parts)
        return self.definitions[table].schema.empty_table()


class MemoryAlertSink(AlertSink):
    """Keeps alerts by ``alert_id``; a second write of an id is ignored, as DynamoDB's conditional put."""

    name: ClassVar[str] = "memory"

    def __init__(self) -> None:
        self.items: dict[str, dict[str, object]] = {}

    def _put(self, rows: list[dict[str, object]]) -> list[int]:
        stamps = []
        for row in rows:
            stamp = now_us()
            key = str(row["alert_id"])
            if key not in self.items:
                self.items[key] = {**row, "ts_written": stamp}
            stamps.append(stamp)
        return stamps
