"""The stack's moto (``infra.moto.server``): Kinesis answers byte for byte what the client put, over real
HTTP on 127.0.0.1, and the other services keep working (their XML answers still get a request id); a
shard's reads start at the iterator's position and give what moto's own walk gives; reads and writes at
once on one shard neither fail nor lose a record."""

from __future__ import annotations

import os
import threading
import uuid
from collections import OrderedDict
from pathlib import Path

import boto3
import psutil
import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st
from moto.kinesis.models import Record, Shard

from infra import emulator
from infra.moto.server import _ORIGINAL_GET_RECORDS, _get_records, _put_record


@settings(max_examples=25)
@given(payloads=st.lists(st.binary(min_size=1, max_size=600), min_size=1, max_size=30))
def test_get_records_returns_the_bytes_put(aws_endpoint: str, payloads: list[bytes]) -> None:
    kinesis = boto3.client("kinesis", endpoint_url=aws_endpoint, region_name="us-east-1")
    stream = f"moto-bytes-{uuid.uuid4().hex[:12]}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    try:
        kinesis.put_records(
            StreamName=stream, Records=[{"PartitionKey": str(i), "Data": p} for i, p in enumerate(payloads)]
        )
        shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
        it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
        records = kinesis.get_records(ShardIterator=it["ShardIterator"])["Records"]
        assert [r["Data"] for r in records] == payloads
        assert [r["PartitionKey"] for r in records] == [str(i) for i in range(len(payloads))]
    finally:
        kinesis.delete_stream(StreamName=stream)


def test_record_data_stays_out_of_the_servers_memory(tmp_path: Path) -> None:
    """Once the server's allocator has warmed up (80 MB put), 80 MB more grow its RSS by less than half
    their base64 (107 MB, which moto kept in the heap), and every record reads back whole."""
    endpoint = emulator.start("moto", tmp_path).endpoint
    server = psutil.Process(emulator.server_process("moto", tmp_path).read_pid())
    try:
        kinesis = boto3.client(
            "kinesis", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="test", aws_secret_access_key="test",
        )  # fmt: skip
        kinesis.create_stream(StreamName="spill", ShardCount=1)
        payloads = [os.urandom(1_000_000) for _ in range(160)]
        grown = []
        for half in (payloads[:80], payloads[80:]):
            before = server.memory_info().rss
            for k in range(0, len(half), 4):  # PutRecords takes 5 MB at most
                kinesis.put_records(
                    StreamName="spill", Records=[{"PartitionKey": "k", "Data": p} for p in half[k : k + 4]]
                )
            grown.append(server.memory_info().rss - before)
        shard = kinesis.list_shards(StreamName="spill")["Shards"][0]["ShardId"]
        it = kinesis.get_shard_iterator(StreamName="spill", ShardId=shard, ShardIteratorType="TRIM_HORIZON")
        got: list[bytes] = []
        cursor = it["ShardIterator"]
        while len(got) < len(payloads):
            page = kinesis.get_records(ShardIterator=cursor, Limit=8)
            got += [r["Data"] for r in page["Records"]]
            cursor = page["NextShardIterator"]
    finally:
        emulator.server_process("moto", tmp_path).stop()
    assert got == payloads
    assert grown[1] < 107e6 / 2  # kept in the heap, it grew by more than all of it (148 MB measured)


def test_xml_answers_still_carry_their_request_id(aws_endpoint: str) -> None:
    sts = boto3.client("sts", endpoint_url=aws_endpoint, region_name="us-east-1")
    meta = sts.get_caller_identity()["ResponseMetadata"]  # an XML answer with a <RequestId> tag
    assert meta["RequestId"]
    assert meta["RequestId"] == meta["HTTPHeaders"]["x-amzn-requestid"]


def _shard(sequence_numbers: list[int]) -> Shard:
    shard = Shard(0, 0, 2**128)
    shard.records = OrderedDict(
        (n, Record(str(n), "ZGF0YQ==", n, str(n))) for n in sequence_numbers
    )
    for i, record in enumerate(shard.records.values()):  # distinct arrival times, in order
        record.created_at = 1_000.0 + i * 0.0137
    return shard


@given(
    first=st.integers(1, 5), size=st.integers(0, 60), gap=st.none() | st.integers(0, 59),
    after=st.integers(-2, 70), limit=st.none() | st.integers(0, 25),
)
def test_a_read_from_the_iterators_position_is_moto_own_read(
    first: int, size: int, gap: int | None, after: int, limit: int | None
) -> None:
    numbers = list(range(first, first + size))
    if gap is not None and gap < size:
        numbers = numbers[:gap] + [n + 3 for n in numbers[gap:]]  # a gap: the original walk decides
    shard = _shard(numbers)
    assert _get_records(shard, str(after), limit) == _ORIGINAL_GET_RECORDS(shard, str(after), limit)


def test_a_put_takes_the_next_sequence_number() -> None:
    shard = _shard([1, 2, 3])
    assert _put_record(shard, "k", "ZGF0YQ==", "1") == "4"
    assert list(shard.records) == [1, 2, 3, 4]
    assert _put_record(_shard([]), "k", "ZGF0YQ==", "1") == "1"


def test_reads_while_records_are_put_neither_fail_nor_miss_one(aws_endpoint: str) -> None:
    kinesis = boto3.client("kinesis", endpoint_url=aws_endpoint, region_name="us-east-1")
    stream = f"moto-race-{uuid.uuid4().hex[:12]}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    puts, batch = 40, 50
    try:
        def put() -> None:
            writer = boto3.client("kinesis", endpoint_url=aws_endpoint, region_name="us-east-1")
            for b in range(puts):
                writer.put_records(StreamName=stream, Records=[
                    {"PartitionKey": "k", "Data": f"{b}:{i}".encode()} for i in range(batch)
                ])

        writer = threading.Thread(target=put)
        writer.start()
        shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
        it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
        iterator, seen = it["ShardIterator"], list[str]()
        while len(seen) < puts * batch:  # a 500 would raise here (botocore gives up after its retries)
            answer = kinesis.get_records(ShardIterator=iterator, Limit=37)
            seen += [r["Data"].decode() for r in answer["Records"]]
            iterator = answer["NextShardIterator"]
        writer.join()
        assert seen == [f"{b}:{i}" for b in range(puts) for i in range(batch)]
    finally:
        kinesis.delete_stream(StreamName=stream)


def test_a_put_reads_its_parameters_and_limits_as_moto_does(aws_endpoint: str) -> None:
    """The body parsed once: the stream is found, the record and call size limits still hold."""
    kinesis = boto3.client("kinesis", endpoint_url=aws_endpoint, region_name="us-east-1")
    stream = f"moto-limits-{uuid.uuid4().hex[:12]}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    try:
        whole = kinesis.put_records(
            StreamName=stream, Records=[{"PartitionKey": "k", "Data": b"x" * 1_048_575}]
        )
        assert whole["FailedRecordCount"] == 0
        with pytest.raises(ClientError, match="ValidationException"):
            kinesis.put_records(StreamName=stream, Records=[{"PartitionKey": "k", "Data": b"x" * 1_048_576}])
        with pytest.raises(ClientError, match="InvalidArgumentException"):
            kinesis.put_records(
                StreamName=stream,
                Records=[{"PartitionKey": str(i), "Data": b"x" * 900_000} for i in range(6)],
            )
    finally:
        kinesis.delete_stream(StreamName=stream)
