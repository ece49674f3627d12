"""The fault proxy against the session's real moto server, through real boto3 clients on 127.0.0.1."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError, ConnectionClosedError

from infra.faultproxy.server import FaultProxy
from infra.faultproxy.spec import KinesisLimits, ProxySpec
from pipeline.aws import client
from pipeline.config import RuntimeSettings

pytestmark = pytest.mark.integration

NO_RETRIES = BotoConfig(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture
def stream(aws_endpoint: str) -> Iterator[str]:
    """A fresh one-shard stream on the emulator."""
    name = f"proxy-{uuid.uuid4().hex[:8]}"
    kinesis = client("kinesis", RuntimeSettings(aws_endpoint=aws_endpoint))
    kinesis.create_stream(StreamName=name, ShardCount=1)
    yield name
    kinesis.delete_stream(StreamName=name)


def _client(service: str, proxy: FaultProxy, config: BotoConfig | None = None) -> Any:
    runtime = RuntimeSettings(aws_endpoint=proxy.endpoint)
    return client(service, runtime, config=config) if config else client(service, runtime)


@pytest.mark.parametrize(
    ("service", "call", "codes"),
    [
        ("kinesis", lambda c: c.list_streams(), {"ProvisionedThroughputExceededException"}),
        ("dynamodb", lambda c: c.list_tables(),
         {"ProvisionedThroughputExceededException", "ThrottlingException"}),
        ("glue", lambda c: c.get_databases(), {"ThrottlingException"}),
        ("s3", lambda c: c.list_buckets(), {"SlowDown"}),
    ],
)
def test_throttling_comes_in_the_services_own_error_shape(
    aws_endpoint: str, service: str, call: Any, codes: set[str]
) -> None:
    with FaultProxy(aws_endpoint, ProxySpec(throttle=1.0, max_consecutive=100)) as proxy:
        c = _client(service, proxy, NO_RETRIES)
        seen = set()
        for _ in range(6):
            with pytest.raises(ClientError) as info:
                call(c)
            seen.add(info.value.response["Error"]["Code"])
        assert seen <= codes and seen
        assert proxy.injected[f"{service}:throttle"] == 6


def test_server_errors_and_resets_are_what_botocore_sees_and_retries(aws_endpoint: str) -> None:
    with FaultProxy(aws_endpoint, ProxySpec(server_error=1.0, max_consecutive=100)) as proxy:
        with pytest.raises(ClientError) as info:
            _client("dynamodb", proxy, NO_RETRIES).list_tables()
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] in (500, 503)
    with (
        FaultProxy(aws_endpoint, ProxySpec(reset=1.0, max_consecutive=100)) as proxy,
        pytest.raises(ConnectionClosedError),
    ):
        _client("kinesis", proxy, NO_RETRIES).list_streams()
    # the default retry policy (pipeline.aws.MAX_ATTEMPTS) gets through: at most 2 faults in a row
    spec = ProxySpec(seed=3, throttle=0.3, server_error=0.3, reset=0.3, max_consecutive=2)
    with FaultProxy(aws_endpoint, spec) as proxy:
        kinesis = _client("kinesis", proxy)
        for _ in range(20):
            kinesis.list_streams()
        assert sum(proxy.injected[k] for k in ("throttle", "server_error", "reset")) > 5


def test_same_seed_same_faults(aws_endpoint: str) -> None:
    spec = ProxySpec(seed=11, throttle=0.2, server_error=0.2, reset=0.1, slow=0.1, slow_ms=1)

    def run() -> dict[str, int]:
        with FaultProxy(aws_endpoint, spec) as proxy:
            dynamo = _client("dynamodb", proxy)
            for _ in range(15):
                dynamo.list_tables()
            return dict(proxy.injected)

    first = run()
    assert first and run() == first
    other = spec.model_copy(update={"seed": 12})
    with FaultProxy(aws_endpoint, other) as proxy:
        dynamo = _client("dynamodb", proxy)
        for _ in range(15):
            dynamo.list_tables()
        assert dict(proxy.injected) != first


def test_lost_answers_only_hit_requests_safe_to_repeat(aws_endpoint: str, stream: str) -> None:
    with FaultProxy(aws_endpoint, ProxySpec(lost_response=1.0, max_consecutive=100)) as proxy:
        kinesis = _client("kinesis", proxy, NO_RETRIES)
        kinesis.put_records(StreamName=stream, Records=[{"Data": b"x", "PartitionKey": "k"}])
        with pytest.raises(ConnectionClosedError):
            kinesis.list_shards(StreamName=stream)
        assert proxy.injected == {"lost_response": 1, "kinesis:lost_response": 1}
    direct = client("kinesis", RuntimeSettings(aws_endpoint=aws_endpoint))
    shard = direct.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    it = direct.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    assert len(direct.get_records(ShardIterator=it["ShardIterator"])["Records"]) == 1


def test_kinesis_write_quota_refuses_records_past_1000_a_second_per_shard(
    aws_endpoint: str, stream: str
) -> None:
    now = [100.0]
    with FaultProxy(aws_endpoint, ProxySpec(kinesis_limits=KinesisLimits())) as proxy:
        assert proxy.quota is not None
        proxy.quota.clock = lambda: now[0]
        kinesis = _client("kinesis", proxy)
        records = [{"Data": f"{i}".encode(), "PartitionKey": f"k{i}"} for i in range(400)]
        answers = [kinesis.put_records(StreamName=stream, Records=records) for _ in range(3)]
        assert [a["FailedRecordCount"] for a in answers] == [0, 0, 200]
        refused = [r for r in answers[2]["Records"] if "ErrorCode" in r]
        assert {r["ErrorCode"] for r in refused} == {"ProvisionedThroughputExceededException"}
        assert answers[2]["Records"][:200] == [r for r in answers[2]["Records"] if "SequenceNumber" in r]
        now[0] += 1.0  # the next second has room again
        assert kinesis.put_records(StreamName=stream, Records=records)["FailedRecordCount"] == 0
        assert proxy.summary()["kinesis_quota"]["refused_records"] == 200
        peak = proxy.quota.peaks[f"{stream}/shardId-000000000000"]
        assert peak.records == 1200
    direct = client("kinesis", RuntimeSettings(aws_endpoint=aws_endpoint))
    shard = direct.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    it = direct.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    got = direct.get_records(ShardIterator=it["ShardIterator"], Limit=10_000)["Records"]
    assert len(got) == 400 * 3 + 200  # exactly the admitted ones reached the stream


def test_kinesis_write_quota_counts_bytes(aws_endpoint: str, stream: str) -> None:
    with FaultProxy(aws_endpoint, ProxySpec(kinesis_limits=KinesisLimits())) as proxy:
        assert proxy.quota is not None
        proxy.quota.clock = lambda: 5.0
        kinesis = _client("kinesis", proxy)
        big = [{"Data": b"x" * 300_000, "PartitionKey": "k"} for _ in range(4)]  # 1.2 MB > 1 MiB
        answer = kinesis.put_records(StreamName=stream, Records=big)
        assert answer["FailedRecordCount"] == 1
        single = _client("kinesis", proxy, NO_RETRIES)
        with pytest.raises(ClientError) as info:
            single.put_record(StreamName=stream, Data=b"y" * 200_000, PartitionKey="k")
        assert info.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"


def test_kinesis_read_quota_allows_five_calls_a_second_per_shard(aws_endpoint: str, stream: str) -> None:
    now = [0.0]
    with FaultProxy(aws_endpoint, ProxySpec(kinesis_limits=KinesisLimits())) as proxy:
        assert proxy.quota is not None
        proxy.quota.clock = lambda: now[0]
        kinesis = _client("kinesis", proxy, NO_RETRIES)
        kinesis.put_records(StreamName=stream, Records=[{"Data": b"x", "PartitionKey": "k"}])
        it = kinesis.get_shard_iterator(
            StreamName=stream, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for _ in range(5):
            it = kinesis.get_records(ShardIterator=it)["NextShardIterator"]
        with pytest.raises(ClientError) as info:
            kinesis.get_records(ShardIterator=it)
        assert info.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
        now[0] = 1.0
        kinesis.get_records(ShardIterator=it)  # the same iterator works in the next second
        assert proxy.quota.refused_reads == 1


def test_a_dead_emulator_behind_the_proxy_is_a_dead_endpoint(tmp_path: Any) -> None:
    from infra import emulator

    moto = emulator.start("moto", tmp_path)
    with FaultProxy(moto.endpoint) as proxy:
        kinesis = _client("kinesis", proxy, NO_RETRIES)
        kinesis.list_streams()
        emulator.server_process("moto", tmp_path).stop()
        time.sleep(0.1)
        with pytest.raises(ConnectionClosedError):
            kinesis.list_streams()


def test_s3_objects_keep_their_size_and_bytes_through_the_proxy(aws_endpoint: str) -> None:
    """HEAD answers carry the object's length (Iceberg's S3 file IO sizes a metadata file before reading)."""
    bucket = f"proxy-{uuid.uuid4().hex[:8]}"
    with FaultProxy(aws_endpoint) as proxy:
        s3 = _client("s3", proxy)
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="m.json", Body=b'{"format-version": 2}')
        assert s3.head_object(Bucket=bucket, Key="m.json")["ContentLength"] == 21
        assert s3.get_object(Bucket=bucket, Key="m.json")["Body"].read() == b'{"format-version": 2}'
