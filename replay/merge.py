"""The k-way merge of many tapes (and of each tape's trades and quotes) into one ordered event stream.

Every event stream of every tape is sorted by ``(ts_event, seq)``; the merge orders all of them by
``(ts_event, tape index, seq)``, which is total (``seq`` is unique within a tape) and so deterministic.
It works a chunk at a time in Arrow: from each source's buffered batch it takes the rows strictly
before the smallest "last timestamp" among the sources that may still deliver rows (no later row of any
source can sort before them), sorts that slice in C++, and refills only the source that bounded the cut.
Memory stays at about one batch per source plus one output chunk.

The merged rows use one schema, ``MERGED_SCHEMA``: every kind's fields (null where the kind has none),
``kind`` (0 trade, 1 quote, 2 transfer, as in ``core.events.TAPE_KINDS``), ``tape`` (its index on the
command line) and ``seq``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.events import TAPE_KINDS, TAPE_SCHEMAS, TapeKind
from core.tape import Tape

KIND_CODE: Final[dict[TapeKind, int]] = {kind: i for i, kind in enumerate(TAPE_KINDS)}

_FIELDS: dict[str, pa.Field] = {}
for _schema in TAPE_SCHEMAS.values():
    for _field in _schema:
        _FIELDS.setdefault(_field.name, _field.with_nullable(True))

MERGED_SCHEMA: Final = pa.schema(
    [
        pa.field("kind", pa.int8(), nullable=False),
        pa.field("tape", pa.int32(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        *_FIELDS.values(),
    ]
)
SORT_KEYS: Final = [("ts_event", "ascending"), ("tape", "ascending"), ("seq", "ascending")]
DEFAULT_BATCH_ROWS: Final = 65_536


@dataclass(frozen=True)
class TimeWindow:
    """An exchange-time cut ``[start_us, end_us)``; ``None`` leaves that side open."""

    start_us: int | None = None
    end_us: int | None = None

    def mask(self, ts: pa.Array) -> pa.Array | None:
        """The rows of ``ts`` inside the window, or ``None`` when every row is."""
        conds = []
        if self.start_us is not None:
            conds.append(pc.greater_equal(ts, self.start_us))
        if self.end_us is not None:
            conds.append(pc.less(ts, self.end_us))
        if not conds:
            return None
        return conds[0] if len(conds) == 1 else pc.and_(conds[0], conds[1])


def to_merged(kind: TapeKind, tape_index: int, batch: pa.RecordBatch | pa.Table) -> pa.Table:
    """One kind's tape rows in ``MERGED_SCHEMA`` (the other kind's fields null)."""
    n = batch.num_rows
    columns: list[pa.Array | pa.ChunkedArray] = [
        pa.array(np.full(n, KIND_CODE[kind], dtype=np.int8)),
        pa.array(np.full(n, tape_index, dtype=np.int32)),
    ]
    names = set(batch.schema.names)
    for field in list(MERGED_SCHEMA)[2:]:
        if field.name in names:
            columns.append(batch.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(n, field.type))
    if isinstance(batch, pa.RecordBatch):
        return pa.Table.from_batches([pa.RecordBatch.from_arrays(columns, schema=MERGED_SCHEMA)])
    return pa.Table.from_arrays(columns, schema=MERGED_SCHEMA)


class _Source:
    """One (tape, kind) stream with a buffer of rows not yet merged."""

    def __init__(self, batches: Iterator[pa.Table]) -> None:
        self._batches = batches
        self.buffer: pa.Table | None = None
        self.exhausted = False

    def fill(self) -> None:
        """Append the next non-empty batch to the buffer, or mark the source exhausted."""
        for table in self._batches:
            if table.num_rows:
                self.buffer = table if self.buffer is None else pa.concat_tables([self.buffer, table])
                return
        self.exhausted = True

    def last_ts(self) -> int:
        assert self.buffer is not None
        return int(self.buffer.column("ts_event")[-1].as_py())


def _source_batches(
    tape: Tape, tape_index: int, kind: TapeKind, window: TimeWindow, batch_rows: int
) -> Iterator[pa.Table]:
    for batch in tape.iter_batches(kind, batch_rows=batch_rows):
        ts = batch.column("ts_event")
        if window.end_us is not None and ts[0].as_py() >= window.end_us:
            return  # sorted by ts_event: nothing later can fall inside the window
        mask = window.mask(ts)
        table = to_merged(kind, tape_index, batch)
        yield table if mask is None else table.filter(mask)


def merge_tapes(
    tapes: Sequence[Tape],
    *,
    window: TimeWindow = TimeWindow(),
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Iterator[pa.Table]:
    """Stream every event of ``tapes`` in ``(ts_event, tape index, seq)`` order, a chunk at a time."""
    sources = [
        _Source(_source_batches(tape, i, kind, window, batch_rows))
        for i, tape in enumerate(tapes)
        for kind in TAPE_KINDS
    ]
    for source in sources:
        source.fill()
    while True:
        live = [s for s in sources if s.buffer is not None and s.buffer.num_rows]
        if not live:
            return
        pending = [s for s in live if not s.exhausted]
        if pending:
            bound_source = min(pending, key=_Source.last_ts)
            bound = bound_source.last_ts()
            parts = []
            for s in live:
                assert s.buffer is not None
                cut = _count_before(s.buffer, bound)
                if cut:
                    parts.append(s.buffer.slice(0, cut))
                    s.buffer = s.buffer.slice(cut)
            for s in pending:
                if s.buffer is None or s.buffer.num_rows == 0 or s.last_ts() == bound:
                    s.fill()
        else:
            parts = [s.buffer for s in live if s.buffer is not None]
            for s in live:
                s.buffer = None
        if parts:
            yield _sorted(parts)


def _count_before(table: pa.Table, bound: int) -> int:
    ts = table.column("ts_event").to_numpy()
    return int(np.searchsorted(ts, bound, side="left"))


def _sorted(parts: list[pa.Table]) -> pa.Table:
    # take() on one contiguous chunk per column is several times faster than on many chunks
    table = (parts[0] if len(parts) == 1 else pa.concat_tables(parts)).combine_chunks()
    if len(parts) > 1:
        table = table.take(pc.sort_indices(table, sort_keys=SORT_KEYS))
    return table
