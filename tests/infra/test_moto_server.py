"""The stack's moto (``infra.moto.server``): Kinesis answers byte for byte what the client put, over real
HTTP on 127.0.0.1, and the other services keep working (their XML answers still get a request id)."""

from __future__ import annotations

import uuid

import boto3
from hypothesis import given, settings
from hypothesis import strategies as st


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

def test_xml_answers_still_carry_their_request_id(aws_endpoint: str) -> None:
    sts = boto3.client("sts", endpoint_url=aws_endpoint, region_name="us-east-1")
    meta = sts.get_caller_identity()["ResponseMetadata"]  # an XML answer with a <RequestId> tag
    assert meta["RequestId"]
    assert meta["RequestId"] == meta["HTTPHeaders"]["x-amzn-requestid"]
