"""Kinesis records to ``RAW_SCHEMA`` Arrow batches: KPL aggregates de-aggregated, one row per user record.

An aggregate in the usual layout (``pipeline.kpl.locate_user_records``) becomes Arrow arrays with NumPy,
with no Python object per user record; any other record takes ``deaggregate``'s per-record path, whose
rows are built from Python lists. Both keep the records' order and give the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final

import numpy as np
import pyarrow as pa

from core.errors import SchemaError
from pipeline.kpl import UserRecordSpans, deaggregate, locate_user_records
from pipeline.record_schema import RAW_SCHEMA

ARROW_CHUNK: Final = 65_536
"""User records per Arrow batch at most, about (a batch ends after the Kinesis record that reaches it):
bounds what is held while a batch is built."""


class _Rows:
    """The rows of the batch being built: finished column pieces, then rows still held as lists."""

    def __init__(self, shard_id: str) -> None:
        self.shard_id = shard_id
        self.pieces: list[list[pa.Array]] = []
        self.count = 0
        self._lists()

    def _lists(self) -> None:
        self.seqs: list[str] = []
        self.subs: list[int] = []
        self.keys: list[str] = []
        self.datas: list[bytes] = []
        self.ingests: list[int | None] = []

    def add(self, seq: str, sub: int, key: str, data: bytes, ingest: int | None) -> None:
        """One user record from the per-record path."""
        self.seqs.append(seq)
        self.subs.append(sub)
        self.keys.append(key)
        self.datas.append(data)
        self.ingests.append(ingest)
        self.count += 1

    def add_spans(self, seq: str, data: bytes, ingest: int | None, spans: UserRecordSpans) -> None:
        """Every user record of one aggregate, located by ``locate_user_records``."""
        self._close_lists()
        n = len(spans.starts)
        buf = np.frombuffer(data, dtype=np.uint8)
        # keep the bytes inside the spans: +1 where one starts, -1 where it ends, a running sum
        marks = np.zeros(len(buf) + 1, dtype=np.int8)
        marks[spans.starts] += 1
        marks[spans.starts + spans.lengths] -= 1
        values = buf[np.cumsum(marks[:-1], dtype=np.int8).astype(bool)]
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(spans.lengths, out=offsets[1:])
        once = np.zeros(n, dtype=np.int64)
        self.pieces.append([
            pa.array([seq], type=pa.string()).take(once),
            pa.array(np.arange(n, dtype=np.int32)),
            pa.array(spans.keys, type=pa.string()).take(pa.array(spans.key_index)),
            pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(values)]),
            pa.array([ingest], type=pa.int64()).take(once),
        ])
        self.count += n

    def _close_lists(self) -> None:
        if self.seqs:
            self.pieces.append([
                pa.array(self.seqs, type=pa.string()),
                pa.array(self.subs, type=pa.int32()),
                pa.array(self.keys, type=pa.string()),
                pa.array(self.datas, type=pa.binary()),
                pa.array(self.ingests, type=pa.int64()),
            ])
            self._lists()

    def batch(self) -> pa.RecordBatch:
        """The rows held, as one ``RAW_SCHEMA`` batch; the builder is empty again."""
        self._close_lists()
        columns = [pa.concat_arrays([piece[i] for piece in self.pieces]) for i in range(5)]
        shard = pa.array([self.shard_id], type=pa.string()).take(np.zeros(self.count, dtype=np.int64))
        self.pieces, self.count = [], 0
        return pa.RecordBatch.from_arrays([shard, *columns], schema=RAW_SCHEMA)


def raw_batches(
    shard_id: str,
    seqs: Sequence[str],
    keys: Sequence[str],
    datas: Sequence[bytes],
    ingests: Sequence[int | None],
) -> Iterator[pa.RecordBatch]:
    """One shard's Kinesis records, de-aggregated, as ``RAW_SCHEMA`` batches in order.

    A corrupt aggregate is kept whole, as one record, so that it is quarantined rather than lost.
    """
    rows = _Rows(shard_id)
    for seq, key, data, ingest in zip(seqs, keys, datas, ingests, strict=True):
        spans = locate_user_records(data)
        if spans is not None:
            rows.add_spans(seq, data, ingest, spans)
        else:
            try:
                users = deaggregate(data, key)
            except SchemaError:
                users = [(key, data)]
            for sub, (user_key, payload) in enumerate(users):
                rows.add(seq, sub, user_key, payload, ingest)
        if rows.count >= ARROW_CHUNK:
            yield rows.batch()
    if rows.count:
        yield rows.batch()
