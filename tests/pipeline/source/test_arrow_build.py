"""Kinesis records to ``RAW_SCHEMA`` rows: the located (NumPy) path gives the per-record reference's rows."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import SchemaError
from pipeline.kpl import MAGIC, deaggregate, encode_aggregate
from pipeline.source import arrow_build
from pipeline.source.arrow_build import raw_batches

keys = st.sampled_from(["binance:BTCUSDT", "k", "ünï"])
user_records = st.lists(st.tuples(keys, st.binary(max_size=200)), min_size=1, max_size=40)
kinesis_data = st.one_of(
    user_records.map(encode_aggregate),  # aggregated, in the usual layout
    st.binary(max_size=60),  # a plain record
    user_records.map(lambda recs: encode_aggregate(recs)[:-1] + b"\x00"),  # corrupt: kept whole
    st.just(MAGIC + b"\x0a\x01k\x1a\x06\x08\x00\x1a\x02hi\x22\x00"),  # short of its MD5
)


def _reference(seqs: list[str], keys: list[str], datas: list[bytes], ingests: list[int | None]) -> list[Any]:
    rows = []
    for seq, key, data, ingest in zip(seqs, keys, datas, ingests, strict=True):
        try:
            users = deaggregate(data, key)
        except SchemaError:
            users = [(key, data)]
        rows += [
            {"shard_id": "shard-1", "sequence_number": seq, "sub_sequence": sub, "partition_key": k,
             "data": d, "ts_ingest": ingest}
            for sub, (k, d) in enumerate(users)
        ]
    return rows


@settings(max_examples=150)
@given(st.lists(st.tuples(kinesis_data, st.one_of(st.none(), st.integers(0, 2**50))), max_size=12),
       st.integers(min_value=1, max_value=50))
def test_rows_are_the_reference_rows_in_order(
    records: list[tuple[bytes, int | None]], chunk: int
) -> None:
    seqs = [f"{49_000 + i:056d}" for i in range(len(records))]
    keys = [f"pk{i % 3}" for i in range(len(records))]
    datas = [d for d, _ in records]
    ingests = [t for _, t in records]
    with pytest.MonkeyPatch.context() as patch:  # small batches: every way of cutting them is exercised
        patch.setattr(arrow_build, "ARROW_CHUNK", chunk)
        batches = list(raw_batches("shard-1", seqs, keys, datas, ingests))
    assert all(b.num_rows for b in batches)
    assert [row for b in batches for row in b.to_pylist()] == _reference(seqs, keys, datas, ingests)
