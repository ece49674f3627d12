"""A tape directory as a Spark source (batch and streaming), for backtests without Kinesis.

``spark.read.format("coattail-tape").load(path)`` or ``spark.readStream.format("coattail-tape")
.option("max_records", N).load(path)`` yields the same ``RAW_SCHEMA`` rows the Kinesis source does, one
per event, in tape order ``(ts_event, seq)`` (the arrival order of a tape without transport faults):
``data`` is the event's wire record (``core.events.to_wire``), ``shard_id`` is ``"tape"``,
``sequence_number`` the event's position in tape order (zero-padded, so text order is numeric order),
``ts_ingest`` null. The tape plays one Kinesis shard fed in tape order: ``(shard_id, sequence_number)``
is the arrival order, which the state-store mode sorts each key's rows by (``pipeline.keyed``). The
event's ``seq`` cannot serve: an imported tape numbers events in file order and sorts them by
``(ts_event, seq)``, so ``seq`` alone is not tape order. The same parser and detectors run behind it.
A tape's fault spec is the replay's business and is ignored here.

The tape is opened with ``core.tape.Tape`` (the one tape reader: manifest, format version, files), which
production code may use since ``core`` imports nothing of the harness.
Offsets are ``{"rows": n}``: the number of events consumed in tape order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
from pyspark.sql.datasource import (
    DataSource,
    DataSourceReader,
    DataSourceStreamReader,
    InputPartition,
)

from core.errors import PipelineError
from core.events import TAPE_KINDS, TAPE_SCHEMAS, TapeKind, partition_key, to_wire, transfer_partition_key
from core.tape import MANIFEST, Tape
from pipeline.parse import PARSED_DDL, RAW_DDL, RAW_SCHEMA, parse_batch
from pipeline.source.offsets import last_checkpointed_offset, write_status

FORMAT: Final = "coattail-tape"
BATCH_PARTITION_ROWS: Final = 250_000


class TapeRows:
    """A tape's events merged into tape order, loaded once per process."""

    def __init__(self, path: Path) -> None:
        tape = Tape.open(path)
        self.tables: dict[TapeKind, pa.Table] = {}
        order_ts, order_seq, order_kind, order_row = [], [], [], []
        for k, kind in enumerate(TAPE_KINDS):
            if not tape.files(kind):
                continue
            table = tape.read(kind)
            self.tables[kind] = table
            order_ts.append(table.column("ts_event").to_numpy())
            order_seq.append(table.column("seq").to_numpy())
            order_kind.append(np.full(table.num_rows, k, dtype=np.int8))
            order_row.append(np.arange(table.num_rows, dtype=np.int64))
        if not order_ts:
            self.kind = np.zeros(0, dtype=np.int8)
            self.row = np.zeros(0, dtype=np.int64)
            return
        ts, seq = np.concatenate(order_ts), np.concatenate(order_seq)
        order = np.lexsort((seq, ts))
        self.kind = np.concatenate(order_kind)[order]
        self.row = np.concatenate(order_row)[order]

    def __len__(self) -> int:
        return len(self.kind)

    def raw(self, lo: int, hi: int) -> pa.RecordBatch:
        """Events ``[lo, hi)`` in tape order as ``RAW_SCHEMA`` rows."""
        kinds, rows = self.kind[lo:hi], self.row[lo:hi]
        pylists: dict[int, dict[str, list[Any]]] = {}
        for k, kind in enumerate(TAPE_KINDS):
            if kind in self.tables and (kinds == k).any():
                sel = self.tables[kind].take(pa.array(rows[kinds == k]))
                pylists[k] = sel.select(TAPE_SCHEMAS[kind].names).to_pydict()
        cursor = dict.fromkeys(pylists, 0)
        seqs = [f"{position:020d}" for position in range(lo, lo + len(kinds))]
        keys: list[str] = []
        datas: list[bytes] = []
        for k in kinds.tolist():
            cols, i = pylists[k], cursor[k]
            cursor[k] = i + 1
            kind = TAPE_KINDS[k]
            row = {name: cols[name][i] for name in TAPE_SCHEMAS[kind].names}
            keys.append(
                transfer_partition_key(row["chain"], row["asset"]) if kind == "transfer"
                else partition_key(row["exchange"], row["symbol"])
            )
            datas.append(to_wire(kind, row))
        n = len(seqs)
        return pa.RecordBatch.from_arrays(
            [
                pa.array(["tape"] * n, type=pa.string()),
                pa.array(seqs, type=pa.string()),
                pa.array([0] * n, type=pa.int32()),
                pa.array(keys, type=pa.string()),
                pa.array(datas, type=pa.binary()),
                pa.array([None] * n, type=pa.int64()),
            ],
            schema=RAW_SCHEMA,
        )


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> TapeRows:
    return TapeRows(Path(path))


def open_rows(path: str) -> TapeRows:
    """The tape's rows, cached per process (executors are reused across micro-batches)."""
    manifest = Path(path) / MANIFEST
    return _load(path, manifest.stat().st_mtime if manifest.exists() else 0.0)


class RowRange(InputPartition):
    """Events ``[lo, hi)`` of the tape in tape order."""

    def __init__(self, lo: int, hi: int) -> None:
        super().__init__((lo, hi))
        self.lo = lo
        self.hi = hi


def _read(path: str, partition: InputPartition, parse: bool) -> Iterator[pa.RecordBatch]:
    assert isinstance(partition, RowRange)
    rows = open_rows(path)
    for lo in range(partition.lo, partition.hi, 65_536):
        raw = rows.raw(lo, min(partition.hi, lo + 65_536))
        yield parse_batch(raw) if parse else raw


class TapeBatchReader(DataSourceReader):
    """The whole tape, in tape order, in partitions of ``BATCH_PARTITION_ROWS``."""

    def __init__(self, path: str, parse: bool) -> None:
        self.path = path
        self.parse = parse

    def partitions(self) -> Sequence[InputPartition]:
        n = len(open_rows(self.path))
        return [RowRange(lo, min(n, lo + BATCH_PARTITION_ROWS)) for lo in range(0, n, BATCH_PARTITION_ROWS)]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        return _read(self.path, partition, self.parse)


class TapeStreamReader(DataSourceStreamReader):
    """At most ``max_records`` events per micro-batch, in tape order, until the tape ends."""

    def __init__(
        self, path: str, max_records: int, checkpoint: str | None, status_path: str | None, parse: bool
    ) -> None:
        self.path = path
        self.parse = parse
        self.status_path = status_path
        self.max_records = max_records
        self.checkpoint = checkpoint
        self._position: int | None = None

    def initialOffset(self) -> dict[str, Any]:  # noqa: N802 (Spark API)
        return {"rows": 0}

    def latestOffset(self) -> dict[str, Any]:  # noqa: N802 (Spark API)
        # Spark plans batch N as (offset N-1, latestOffset()): continue from the offset returned last,
        # or, in a new process, from the last offset in the checkpoint's offset log
        if self._position is None and self.checkpoint:
            last = last_checkpointed_offset(self.checkpoint)
            self._position = int(last["rows"]) if last else None
        total = len(open_rows(self.path))
        start = self._position or 0
        self._position = min(total, start + self.max_records)
        write_status(self.status_path, {"tape": self._position >= total})
        return {"rows": self._position}

    def partitions(self, start: dict[str, Any], end: dict[str, Any]) -> Sequence[InputPartition]:
        lo, hi = int(start["rows"]), int(end["rows"])
        self._position = max(self._position or 0, hi)
        return [RowRange(lo, hi)] if hi > lo else []

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        return _read(self.path, partition, self.parse)

    def commit(self, end: dict[str, Any]) -> None:
        self._position = max(self._position or 0, int(end["rows"]))


class TapeDataSource(DataSource):
    """``format("coattail-tape")``; ``load(path)`` or option ``path``; options ``max_records``,
    ``checkpoint`` (the query's checkpoint location, to resume after a restart), ``status_path``
    (``{"caught_up": bool}`` after every planned batch), ``parse`` (``true``: ``PARSED_SCHEMA`` rows)."""

    @classmethod
    def name(cls) -> str:
        return FORMAT

    def _path(self) -> str:
        path = self.options.get("path")
        if not path:
            raise PipelineError("the coattail-tape source needs a tape directory: .load(PATH)")
        return str(path)

    def _parse(self) -> bool:
        return self.options.get("parse") == "true"

    def schema(self) -> str:
        return PARSED_DDL if self._parse() else RAW_DDL

    def reader(self, schema: Any) -> DataSourceReader:
        return TapeBatchReader(self._path(), self._parse())

    def streamReader(self, schema: Any) -> DataSourceStreamReader:  # noqa: N802 (Spark API)
        return TapeStreamReader(
            self._path(), int(self.options.get("max_records", "200000")), self.options.get("checkpoint"),
            self.options.get("status_path"),
            self._parse(),
        )
