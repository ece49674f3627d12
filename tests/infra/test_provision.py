"""Provisioning against the running emulator: idempotent, and every resource works with boto3."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import StackError
from infra.provision import IcebergSpec, StackSpec, StreamSpec, inspect, provision
from pipeline.aws import client
from pipeline.config import Config, ConfigLoader, ProfileName, RuntimeSettings
from pipeline.detectors.registry import ModuleRegistry
from pipeline.sinks.iceberg import IcebergSink, load_catalog
from pipeline.tables import CORE_TABLES, DATE_COLUMN, TRADES, DynamoTableDef, all_tables

pytestmark = pytest.mark.integration


SMALL_TABLES = tuple(t.name for t in all_tables(ConfigLoader().load("small", env={})))


def _spec(prefix: str, shards: int = 2) -> StackSpec:
    """A spec with names of its own, so tests sharing the session emulator never collide."""
    database = prefix.replace("-", "_")
    return StackSpec(
        streams=(StreamSpec(f"{prefix}-events", shards),),
        alerts_table=DynamoTableDef(f"{prefix}-alerts"),
        buckets=(f"{prefix}-warehouse", f"{prefix}-checkpoints"),
        glue_database=database,
        iceberg=IcebergSpec(database, f"{prefix}-warehouse", SMALL_TABLES),
    )


@pytest.fixture(scope="module")
def runtime(aws_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> RuntimeSettings:
    return RuntimeSettings(aws_endpoint=aws_endpoint, state_dir=tmp_path_factory.mktemp("provision"))


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
    assert spec.iceberg == IcebergSpec(
        config.storage.namespace, config.storage.warehouse_bucket, tuple(t.name for t in all_tables(config))
    )


def test_provision_twice_changes_nothing(runtime: RuntimeSettings) -> None:
    spec = _spec(f"ct-twice-{uuid.uuid4().hex[:6]}")
    assert {r.state for r in inspect(spec, runtime)} == {"missing"}
    first = provision(spec, runtime)
    count = 5 + len(SMALL_TABLES)
    assert [r.state for r in first] == ["created"] * count
    assert [(r.kind, r.name) for r in first] == [
        ("kinesis stream", spec.streams[0].name),
        ("dynamodb table", spec.alerts_table.name),
        ("s3 bucket", spec.buckets[0]),
        ("s3 bucket", spec.buckets[1]),
        ("glue database", spec.glue_database),
        *(("iceberg table", f"{spec.iceberg.namespace}.{name}") for name in SMALL_TABLES),
    ]
    second = provision(spec, runtime)
    assert [r.state for r in second] == ["exists"] * count
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
    spec = StackSpec(
        streams=(), alerts_table=DynamoTableDef(name), buckets=(), glue_database="ct_foreign",
        iceberg=IcebergSpec("ct_foreign", "ct-foreign", ()),
    )
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


@settings(max_examples=10)
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
        IndexName=table.index_on("symbol").name,
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


def _tier(prefix: str, runtime: RuntimeSettings) -> Config:
    """The small tier with every registered module on, under names of its own."""
    database = prefix.replace("-", "_")
    names = {
        "modules": ModuleRegistry().ids(),
        "kinesis.stream": f"{prefix}-events",
        "dynamodb.alerts_table": f"{prefix}-alerts",
        "storage.namespace": database,
        "storage.glue_database": database,
        "storage.warehouse_bucket": f"{prefix}-warehouse",
        "storage.checkpoint_bucket": f"{prefix}-checkpoints",
    }
    config = ConfigLoader().load("small", env={}, overrides=names)
    return config.model_copy(update={"runtime": runtime})


@pytest.mark.parametrize("profile", ["lite", "mirror"])
def test_provisioning_creates_exactly_the_defined_iceberg_tables(
    aws_endpoint: str, tmp_path: Path, profile: ProfileName
) -> None:
    runtime = RuntimeSettings(aws_endpoint=aws_endpoint, state_dir=tmp_path, profile=profile)
    config = _tier(f"ct-ice-{profile}-{uuid.uuid4().hex[:6]}", runtime)
    spec = StackSpec.from_config(config)
    resources = provision(spec, runtime)
    defined = all_tables(config)
    assert len(defined) > len(CORE_TABLES)  # metric tables included
    namespace = config.storage.namespace
    assert [(r.kind, r.name, r.state) for r in resources if r.kind == "iceberg table"] == [
        ("iceberg table", f"{namespace}.{t.name}", "created") for t in defined
    ]
    catalog = load_catalog(runtime, config.storage.warehouse_bucket)
    assert sorted(ident[-1] for ident in catalog.list_tables(namespace)) == sorted(t.name for t in defined)
    for table in defined:
        handle = catalog.load_table(f"{namespace}.{table.name}")
        schema = handle.schema()
        assert [f.name for f in schema.fields] == table.stored_schema.names
        assert [
            (schema.find_column_name(f.source_id), str(f.transform), f.name) for f in handle.spec().fields
        ] == [(column, "identity", f"{column}_part") for column in table.partition_by]
    # the pipeline's sink finds the provisioned tables and writes into them
    sink = IcebergSink(config)
    sink.open(defined)
    trades = TRADES.conform(pa.table({"exchange": ["binance"], "symbol": ["BTCUSDT"], "trade_id": [1],
                                      "price": [1.0], "qty": [1.0], "side": ["buy"], "ts_event": [0]}))
    assert sink.write(0, "query:t", {"trades": trades}) == {"trades": True}
    assert sink.read("trades").column(DATE_COLUMN).to_pylist() == [dt.date(1970, 1, 1)]
    again = [r.state for r in provision(spec, runtime) if r.kind == "iceberg table"]
    assert again == ["exists"] * len(defined)


def test_an_iceberg_table_with_another_layout_is_refused(aws_endpoint: str, tmp_path: Path) -> None:
    runtime = RuntimeSettings(aws_endpoint=aws_endpoint, state_dir=tmp_path)
    config = _tier(f"ct-drift-{uuid.uuid4().hex[:6]}", runtime)
    catalog = load_catalog(runtime, config.storage.warehouse_bucket)
    catalog.create_namespace(config.storage.namespace)
    catalog.create_table(f"{config.storage.namespace}.trades", schema=TRADES.stored_schema)  # unpartitioned
    refused = r"partitioned by \[\], but its definition .* \['event_date', 'symbol'\]"
    with pytest.raises(StackError, match=refused):
        provision(StackSpec.from_config(config), runtime)
