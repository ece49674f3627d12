"""A target that keeps everything in memory, as Arrow tables (for tests and benchmarks)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from core.events import TAPE_KINDS, TAPE_SCHEMAS
from replay import wire
from replay.faults import Disturbance
from replay.targets.base import Target


def stamped(table: pa.Table, ts_sent: int) -> pa.Table:
    """``table`` with a ``ts_sent`` column holding ``ts_sent`` on every row (what a target stamps)."""
    return table.append_column("ts_sent", pa.array(np.full(table.num_rows, ts_sent, dtype=np.int64)))


class MemoryTarget(Target):
    """Stores each handed-over table with its ``ts_sent``; encodes to wire records only on demand."""

    name = "memory"

    def __init__(self) -> None:
        super().__init__()
        self._tables: list[pa.Table] = []
        self.disturbances: list[Disturbance] = []

    def _send(self, table: pa.Table, ts_sent: int) -> None:
        self._tables.append(stamped(table, ts_sent))

    def _disturb(self, disturbance: Disturbance) -> bool:
        # Nothing to throttle or disconnect in memory: the position is recorded (and labelled) so that
        # tests can see where a real target would have been disturbed.
        self.disturbances.append(disturbance)
        return True

    def table(self) -> pa.Table:
        """Every event sent, in arrival order, with ``ts_sent``."""
        if not self._tables:
            return pa.table({})
        return pa.concat_tables(self._tables)

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """``(kind, row)`` per event sent, the row holding the kind's schema fields and ``ts_sent``."""
        out: list[tuple[str, dict[str, Any]]] = []
        for row in self.table().to_pylist():
            kind = TAPE_KINDS[row["kind"]]
            out.append((kind, {n: row[n] for n in (*TAPE_SCHEMAS[kind].names, "ts_sent")}))
        return out

    def records(self) -> list[tuple[str, bytes]]:
        """``(partition key, wire bytes)`` per event sent, as the Kinesis target would put them."""
        out: list[tuple[str, bytes]] = []
        for table in self._tables:
            if table.num_rows == 0:
                continue
            ts_sent = int(table.column("ts_sent")[0].as_py())  # one stamp per hand-over
            keys = wire.partition_keys(table).to_pylist()
            out += list(zip(keys, wire.encode(table, ts_sent), strict=True))
        return out
