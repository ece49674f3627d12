"""Kinesis records to ``RAW_SCHEMA`` Arrow batches: KPL aggregates de-aggregated, one row per user record,
columns built from Python lists in bounded chunks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final

import pyarrow as pa

from core.errors import SchemaError
from pipeline.kpl import deaggregate
from pipeline.parse import RAW_SCHEMA

ARROW_CHUNK: Final = 65_536
"""User records per Arrow batch at most: bounds the lists held while a batch is built."""


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
    out_seqs: list[str] = []
    subs: list[int] = []
    out_keys: list[str] = []
    out_datas: list[bytes] = []
    out_ingests: list[int | None] = []
    for seq, key, data, ingest in zip(seqs, keys, datas, ingests, strict=True):
        try:
            users = deaggregate(data, key)
        except SchemaError:
            users = [(key, data)]
        for sub, (user_key, payload) in enumerate(users):
            out_seqs.append(seq)
            subs.append(sub)
            out_keys.append(user_key)
            out_datas.append(payload)
            out_ingests.append(ingest)
        if len(out_seqs) >= ARROW_CHUNK:
            yield _raw_batch(shard_id, out_seqs, subs, out_keys, out_datas, out_ingests)
            out_seqs, subs, out_keys, out_datas, out_ingests = [], [], [], [], []
    if out_seqs:
        yield _raw_batch(shard_id, out_seqs, subs, out_keys, out_datas, out_ingests)


def _raw_batch(
    shard_id: str, seqs: list[str], subs: list[int], keys: list[str], datas: list[bytes],
    ingests: list[int | None],
) -> pa.RecordBatch:
    n = len(seqs)
    return pa.RecordBatch.from_arrays(
        [
            pa.array([shard_id] * n, type=pa.string()),
            pa.array(seqs, type=pa.string()),
            pa.array(subs, type=pa.int32()),
            pa.array(keys, type=pa.string()),
            pa.array(datas, type=pa.binary()),
            pa.array(ingests, type=pa.int64()),
        ],
        schema=RAW_SCHEMA,
    )
