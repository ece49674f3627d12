"""Malformed records on a real (moto) stream through the Kinesis source's reader with parsing on: every
Kinesis record becomes rows (a well-formed KPL aggregate several), each either a valid event or a
quarantined one with a reason, so ``records in = valid + quarantined`` holds; nothing raises, nothing
hangs."""

from __future__ import annotations

import json
import uuid

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import kpl
from pipeline.aws import client
from pipeline.config import RuntimeSettings
from pipeline.source.kinesis_reader import KinesisStreamReader

pytestmark = pytest.mark.integration

GOOD = json.dumps({"v": 1, "type": "trade", "exchange": "binance", "symbol": "BTCUSDT", "trade_id": 1,
                   "price": 100.0, "qty": 1.0, "side": "buy", "ts_event": 1_700_000_000_000_000}).encode()
BAD = st.one_of(
    st.binary(min_size=1, max_size=200),
    st.just(b"\xff\xfe\xfd not utf-8"),
    st.just(GOOD[: len(GOOD) // 2]),
    st.just(GOOD.replace(b'"price": 100.0', b'"price": "a lot"')),
    st.just(kpl.MAGIC + b"\x00" * 40),  # an aggregate's magic with a broken body
    st.just(kpl.MAGIC + GOOD),
    st.just(b"x" * (512 << 10)),  # half a MiB of nothing
)


@settings(max_examples=15)
@given(st.lists(st.one_of(BAD, st.just(GOOD)), min_size=1, max_size=12))
def test_every_record_is_a_valid_or_a_quarantined_row(aws_endpoint: str, datas: list[bytes]) -> None:
    name = f"malformed-{uuid.uuid4().hex[:8]}"
    kinesis = client("kinesis", RuntimeSettings(aws_endpoint=aws_endpoint))
    kinesis.create_stream(StreamName=name, ShardCount=2)
    for i, data in enumerate(datas):
        kinesis.put_record(StreamName=name, Data=data, PartitionKey=f"k{i}")
    reader = KinesisStreamReader({"stream": name, "endpoint": aws_endpoint, "parse": "true"})
    start = reader.initialOffset()
    end = reader.latestOffset()
    table = pa.Table.from_batches([b for part in reader.partitions(start, end) for b in reader.read(part)])
    assert table.num_rows == sum(kpl.count_user_records(d) for d in datas)
    reasons = table.column("reason").to_pylist()
    valid = sum(r is None for r in reasons)
    assert valid + sum(r is not None for r in reasons) == table.num_rows
    assert valid >= datas.count(GOOD)
    assert reader.latestOffset() == end  # nothing left behind: a second fetch finds nothing new
    kinesis.delete_stream(StreamName=name)
