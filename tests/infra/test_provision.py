"""Provisioning against the running emulator: idempotent, and every resource works with boto3."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import StackError
from infra.provision import StackSpec, StreamSpec, TableSpec, inspect, provision
from pipeline.aws import client
from pipeline.config import Config, RuntimeSettings

pytestmark = pytest.mark.integration


def _spec(prefix: str, shards: int = 2) -> StackSpec:
    """A spec with names of its own, so tests sharing the session emulator never collide."""
    return StackSpec(
        streams=(StreamSpec(f"{prefix}-events", shards),),
        alerts_table=TableSpec(f"{prefix}-alerts"),
        buckets=(f"{prefix}-warehouse", f"{prefix}-checkpoints"),
        glue_database=prefix.replace("-", "_"),
    )


@pytest.fixture(scope="module")
def runtime(aws_endpoint: str) -> RuntimeSettings:
    return RuntimeSettings(aws_endpoint=aws_endpoint)


@pytest.fixture(scope="module")
def provisioned(runtime: RuntimeSettings) -> StackSpec:
    spec = _spec("ct-prov")
    provision(spec, runtime)
    return spec


def test_spec_follows_the_tier_config(config: Config) -> None:
    spec = StackSpec.from_config(config)
    assert spec.streams == (StreamSpec(config.kinesis.stream, config.kinesis.shards),)
    assert spec.alerts_table.name == config.dynamodb.alerts_table
    assert spec.alerts_table.ttl_attribute == "expires_at"
    assert set(spec.buckets) == {config.storage.warehouse_bucket, config.storage.checkpoint_bucket}
    assert spec.glue_database == config.storage.glue_database


def test_provision_twice_changes_nothing(runtime: RuntimeSettings) -> None:
    spec = _spec(f"ct-twice-{uuid.uuid4().hex[:6]}")
    assert {r.state for r in inspect(spec, runtime)} == {"missing"}
    first = provision(spec, runtime)
    assert [r.state for r in first] == ["created"] * 5
    assert [(r.kind, r.name) for r in first] == [
        ("kinesis stream", spec.streams[0].name),
        ("dynamodb table", spec.alerts_table.name),
        ("s3 bucket", spec.buckets[0]),
        ("s3 bucket", spec.buckets[1]),
        ("glue database", spec.glue_database),
    ]
    second = provision(spec, runtime)
    assert [r.state for r in second] == ["exists"] * 5
    assert [r.detail for r in second] == [r.detail for r in first]
    assert inspect(spec, runtime) == second


def test_shard_count_drift_is_an_error_not_a_change(runtime: RuntimeSettings, provisioned: StackSpec) -> None:
    drifted = _spec("ct-prov", shards=4)
    with pytest.raises(StackError, match="has 2 open shards but the tier wants 4"):
        provision(drifted, runtime)
    assert inspect(provisioned, runtime)[0].detail.startswith("2 shards")


def test_table_with_another_layout_is_refused(runtime: RuntimeSettings) -> None:
    name = f"ct-foreign-{uuid.uuid4().hex[:6]}"
    client("dynamodb", runtime).create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    spec = StackSpec(streams=(), alerts_table=TableSpec(name), buckets=(), glue_database="ct_foreign")
    with pytest.raises(StackError, match="needs key"):
        provision(spec, runtime)


def test_unreachable_endpoint_is_a_stack_error() -> None:
    from infra.processes import free_port

    dead = RuntimeSettings(aws_endpoint=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StackError, match="is the stack up"):
        inspect(_spec("ct-nowhere"), dead)


def test_kinesis_round_trip(runtime: RuntimeSettings, provisioned: StackSpec) -> None:
    kinesis = client("kinesis", runtime)
    stream = provisioned.streams[0].name
    payload = json.dumps({"v": 1, "exchange": "binance", "symbol": "BTCUSDT", "trade_id": 1}).encode()
    put = kinesis.put_record(StreamName=stream, Data=payload, PartitionKey="binance:BTCUSDT")
    iterator = kinesis.get_shard_iterator(
        StreamName=stream,
        ShardId=put["ShardId"],
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber=put["SequenceNumber"],
    )["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator, Limit=10)["Records"]
    assert records[0]["Data"] == payload
    assert records[0]["PartitionKey"] == "binance:BTCUSDT"
    assert records[0]["SequenceNumber"] == put["SequenceNumber"]


def test_dynamodb_ttl_is_enabled_on_expires_at(runtime: RuntimeSettings, provisioned: StackSpec) -> None:
    ttl = client("dynamodb", runtime).describe_time_to_live(TableName=provisioned.alerts_table.name)
    assert ttl["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"


def _alert_item(alert_id: str, symbol: str, ts_event: int) -> dict[str, Any]:
    return {
        "alert_id": {"S": alert_id},
        "symbol": {"S": symbol},
        "ts_event": {"N": str(ts_event)},
        "expires_at": {"N": str(ts_event // 1_000_000 + 24 * 3600)},
        "detector": {"S": "MOD-001"},
    }


def test_dynamodb_put_get_round_trip(runtime: RuntimeSettings, provisioned: StackSpec) -> None:
    dynamodb = client("dynamodb", runtime)
    table = provisioned.alerts_table.name
    item = _alert_item("a" * 32, "BTCUSDT", 1_700_000_000_123_456)
    dynamodb.put_item(TableName=table, Item=item)
    got = dynamodb.get_item(TableName=table, Key={"alert_id": item["alert_id"]}, ConsistentRead=True)
    assert got["Item"] == item


@settings(max_examples=10, deadline=None)
@given(
    times=st.lists(st.integers(1_600_000_000_000_000, 1_800_000_000_000_000), min_size=1, max_size=12),
    bounds=st.tuples(
        st.integers(1_600_000_000_000_000, 1_800_000_000_000_000),
        st.integers(1_600_000_000_000_000, 1_800_000_000_000_000),
    ),
)
def test_gsi_answers_symbol_and_event_time_queries(
    runtime: RuntimeSettings, provisioned: StackSpec, times: list[int], bounds: tuple[int, int]
) -> None:
    """Querying the index by symbol and an event-time range returns exactly those alerts, in time order."""
    dynamodb = client("dynamodb", runtime)
    table = provisioned.alerts_table
    symbol = f"SYM{uuid.uuid4().hex[:8]}"  # a fresh partition per example
    for i, ts in enumerate(times):
        dynamodb.put_item(TableName=table.name, Item=_alert_item(f"{symbol}-{i}", symbol, ts))
    lo, hi = min(bounds), max(bounds)
    response = dynamodb.query(
        TableName=table.name,
        IndexName=table.index_name,
        KeyConditionExpression="symbol = :s AND ts_event BETWEEN :lo AND :hi",
        ExpressionAttributeValues={":s": {"S": symbol}, ":lo": {"N": str(lo)}, ":hi": {"N": str(hi)}},
    )
    got = [int(item["ts_event"]["N"]) for item in response["Items"]]
    assert got == sorted(ts for ts in times if lo <= ts <= hi)


def test_s3_round_trip_in_both_buckets(runtime: RuntimeSettings, provisioned: StackSpec) -> None:
    s3 = client("s3", runtime)
    for bucket in provisioned.buckets:
        body = f"hello {bucket}".encode()
        s3.put_object(Bucket=bucket, Key="probe/object.bin", Body=body)
        assert s3.get_object(Bucket=bucket, Key="probe/object.bin")["Body"].read() == body


def test_glue_database_round_trip(runtime: RuntimeSettings, provisioned: StackSpec) -> None:
    glue = client("glue", runtime)
    assert glue.get_database(Name=provisioned.glue_database)["Database"]["Name"] == provisioned.glue_database
    glue.create_table(
        DatabaseName=provisioned.glue_database,
        TableInput={
            "Name": "probe",
            "StorageDescriptor": {"Location": f"s3://{provisioned.buckets[0]}/probe"},
        },
    )
    tables = glue.get_tables(DatabaseName=provisioned.glue_database)["TableList"]
    assert [t["Name"] for t in tables] == ["probe"]
