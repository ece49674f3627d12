"""One contract suite for every table sink and every alert sink: exactly once per batch / per alert id."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from core.errors import SinkError, UnsafeEndpointError
from pipeline.aws import DUMMY_CREDENTIALS, MAX_ATTEMPTS, client
from pipeline.config import Config, RuntimeSettings
from pipeline.detectors.data_quality import DQ_METRICS
from pipeline.sinks.base import BATCH_PROPERTY, AlertSink, TableSink
from pipeline.sinks.delta import DeltaSink
from pipeline.sinks.dynamodb import DynamoAlertSink
from pipeline.sinks.iceberg import IcebergSink, load_catalog
from pipeline.sinks.memory import MemoryAlertSink, MemoryTableSink
from pipeline.sinks.spark_iceberg import SparkIcebergSink
from pipeline.tables import ALERTS, QUARANTINE, TRADES
from pipeline.testkit import T0, run_engine, small_config, trade

TABLES = (TRADES, QUARANTINE, ALERTS, DQ_METRICS)


def with_runtime(config: Config, **runtime: object) -> Config:
    return config.model_copy(update={"runtime": RuntimeSettings(**runtime)})


def mirror_config(endpoint: str, tmp: Path) -> Config:
    cfg = small_config()
    bucket = f"wh-{uuid.uuid4().hex[:12]}"
    storage = cfg.storage.model_copy(update={"warehouse_bucket": bucket, "namespace": f"ns_{bucket[3:]}"})
    cfg = with_runtime(cfg.model_copy(update={"storage": storage}), profile="mirror", aws_endpoint=endpoint,
                       state_dir=tmp)
    client("s3", cfg.runtime).create_bucket(Bucket=bucket)
    return cfg


@pytest.fixture(params=["memory", "iceberg-lite", "iceberg-mirror", "iceberg-spark-lite",
                        "iceberg-spark-mirror", "delta-lite", "delta-mirror"])
def table_sink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], TableSink]]:
    kind = request.param
    if kind == "memory":
        shared = MemoryTableSink()
        yield lambda: shared
        return
    if kind.endswith("-mirror"):
        request.applymarker(pytest.mark.integration)
        cfg = mirror_config(request.getfixturevalue("aws_endpoint"), tmp_path)
    else:
        cfg = with_runtime(small_config(), profile="lite", state_dir=tmp_path)
    if kind.startswith("iceberg-spark"):
        spark = request.getfixturevalue("spark")
        yield lambda: SparkIcebergSink(cfg, spark)
    elif kind.startswith("delta"):
        spark = request.getfixturevalue("spark")
        yield lambda: DeltaSink(cfg, spark)
    else:
        yield lambda: IcebergSink(cfg)


def _read(sink: TableSink, table: str) -> pa.Table:
    return sink.read(table)  # type: ignore[attr-defined]


def test_each_batch_is_committed_once_per_writer(table_sink: Callable[[], TableSink]) -> None:
    results = run_engine(small_config(), [trade(1, 50_000.0, 30.0, T0), b"bad", trade(2, 1.0, 1.0, T0 + 1)])
    tables = {k: v for k, v in results[0].tables.items() if k in {t.name for t in TABLES}}
    sink = table_sink()
    sink.open(TABLES)
    assert sink.write(0, "query:a", tables) == {"trades": True, "quarantine": True, "alerts": True,
                                                "dq_metrics": True}
    # a restarted process (new sink object) re-runs batch 0: nothing is written twice
    again = table_sink()
    again.open(TABLES)
    assert set(again.write(0, "query:a", tables).values()) == {False}
    assert again.write(1, "query:a", {"trades": tables["trades"]}) == {"trades": True}
    assert again.write(0, "query:b", {"trades": tables["trades"]}) == {"trades": True}
    assert _read(again, "trades").num_rows == 6
    assert _read(again, "quarantine").num_rows == 1
    alerts = _read(again, "alerts")
    assert alerts.num_rows == 1 and alerts.column("alert_id").to_pylist() == [
        results[0].alerts.column("alert_id")[0].as_py()
    ]


class _LostResponseSink(MemoryTableSink):
    """With ``lose_next`` set, commits the next append, then raises as if the response was lost."""

    def __init__(self) -> None:
        super().__init__()
        self.lose_next = False

    def _append(self, table: str, data: pa.Table, properties: dict[str, str]) -> None:
        super()._append(table, data, properties)
        if self.lose_next:
            self.lose_next = False
            raise SinkError("connection reset after the commit")


def test_a_retried_append_that_had_committed_is_not_written_twice() -> None:
    tables = {"trades": run_engine(small_config(), [trade(1, 1.0, 1.0, T0)])[0].tables["trades"]}
    sink = _LostResponseSink()
    sink.open(TABLES)
    assert sink.write(0, "query:a", tables) == {"trades": True}
    sink.lose_next = True
    with pytest.raises(SinkError):
        sink.write(1, "query:a", tables)
    assert sink.write(1, "query:a", tables) == {"trades": False}  # the retry finds batch 1 committed
    assert [p[BATCH_PROPERTY] for p, _ in sink.commits["trades"]] == ["0", "1"]


def test_glue_and_s3_use_their_own_endpoints(tmp_path: Path) -> None:
    glue, s3 = "http://127.0.0.1:4001", "http://localhost:4002"
    cfg = with_runtime(small_config(), profile="mirror", aws_endpoint="http://127.0.0.1:4000",
                       state_dir=tmp_path, service_endpoints={"glue": glue, "s3": s3})
    props = load_catalog(cfg.runtime, cfg.storage.warehouse_bucket).properties
    assert (props["glue.endpoint"], props["s3.endpoint"]) == (glue, s3)
    assert props["glue.access-key-id"] == props["s3.access-key-id"] == DUMMY_CREDENTIALS["aws_access_key_id"]
    remote = with_runtime(small_config(), profile="mirror", aws_endpoint="http://127.0.0.1:4000",
                          state_dir=tmp_path, service_endpoints={"s3": "https://s3.example.com"})
    with pytest.raises(UnsafeEndpointError, match=r"s3\.example\.com"):
        load_catalog(remote.runtime, remote.storage.warehouse_bucket)


def make_dynamo_sink(endpoint: str) -> DynamoAlertSink:
    table = f"alerts-{uuid.uuid4().hex[:8]}"
    cfg = with_runtime(small_config(), aws_endpoint=endpoint)
    cfg = cfg.model_copy(update={"dynamodb": cfg.dynamodb.model_copy(update={"alerts_table": table})})
    client("dynamodb", cfg.runtime).create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "alert_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "alert_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    sink = DynamoAlertSink(cfg)
    sink.open()
    return sink


@pytest.fixture(params=["memory", "dynamodb"])
def alert_sink(request: pytest.FixtureRequest) -> Iterator[AlertSink]:
    if request.param == "memory":
        yield MemoryAlertSink()
        return
    request.applymarker(pytest.mark.integration)
    sink = make_dynamo_sink(request.getfixturevalue("aws_endpoint"))
    yield sink
    sink.close()


def _items(sink: AlertSink) -> dict[str, dict[str, object]]:
    if isinstance(sink, MemoryAlertSink):
        return sink.items
    assert isinstance(sink, DynamoAlertSink)
    items = sink.client.scan(TableName=sink.table)["Items"]
    return {i["alert_id"]["S"]: i for i in items}


def test_alerts_written_once_per_id_with_stamp(alert_sink: AlertSink) -> None:
    results = run_engine(small_config(), [trade(i, 50_000.0, 30.0 * i, T0 + i) for i in range(1, 8)])
    alerts = results[0].alerts
    stamped = alert_sink.write_alerts(alerts)
    assert stamped.schema == ALERTS.schema
    assert all(v is not None for v in stamped.column("ts_written").to_pylist())
    first = {k: dict(v) for k, v in _items(alert_sink).items()}
    assert set(first) == set(alerts.column("alert_id").to_pylist())
    alert_sink.write_alerts(alerts)  # a re-run batch
    assert {k: dict(v) for k, v in _items(alert_sink).items()} == first
    if isinstance(alert_sink, DynamoAlertSink):
        assert (alert_sink.written, alert_sink.skipped) == (alerts.num_rows, alerts.num_rows)


@pytest.mark.integration
def test_dynamodb_writes_the_new_alerts_of_a_batch_whose_other_alerts_exist(aws_endpoint: str) -> None:
    sink = make_dynamo_sink(aws_endpoint)
    trades = [trade(i, 50_000.0, 30.0 + i % 7, T0 + i) for i in range(1, 231)]
    alerts = run_engine(small_config(), trades)[0].alerts
    assert alerts.num_rows == 230
    sink.write_alerts(alerts.slice(40, 30))  # an earlier, partial write of the same batch
    before = {k: dict(v) for k, v in _items(sink).items()}
    stamped = sink.write_alerts(alerts)
    after = _items(sink)
    assert set(after) == set(alerts.column("alert_id").to_pylist())
    assert {k: dict(after[k]) for k in before} == before  # the 30 that existed were not rewritten
    assert (sink.written, sink.skipped) == (230, 30)
    assert all(v is not None for v in stamped.column("ts_written").to_pylist())
    sink.close()


@pytest.mark.integration
def test_dynamodb_item_has_ttl_and_fields(aws_endpoint: str) -> None:
    alert_sink = make_dynamo_sink(aws_endpoint)
    alerts = run_engine(small_config(), [trade(1, 50_000.0, 30.0, T0)])[0].alerts
    stamped = alert_sink.write_alerts(alerts).to_pylist()[0]
    item = _items(alert_sink)[stamped["alert_id"]]
    written = int(item["ts_written"]["N"])  # type: ignore[index]
    assert written == stamped["ts_written"]
    assert int(item["expires_at"]["N"]) == written // 1_000_000 + 24 * 3600  # type: ignore[index]
    assert item["event_ids"] == {"L": [{"S": "trade:binance:BTCUSDT:1"}]}
    assert item["severity"] == {"S": "low"} and float(item["value"]["N"]) == 1.5e6  # type: ignore[index]
    alert_sink.close()


@pytest.mark.integration
def test_dynamodb_missing_table_says_what_to_do(aws_endpoint: str) -> None:
    cfg = with_runtime(small_config(), aws_endpoint=aws_endpoint)
    cfg = cfg.model_copy(update={"dynamodb": cfg.dynamodb.model_copy(update={"alerts_table": "nope"})})
    with pytest.raises(SinkError, match="coattail up"):
        DynamoAlertSink(cfg).open()



class _Body:
    """The raw body of a canned HTTP response, as botocore reads it."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: object) -> Iterator[bytes]:
        yield self.data


def _throttle_puts(sink: DynamoAlertSink, times: int | None) -> list[int]:
    """Answer the first ``times`` PutItem attempts (every one: None) with a throttling error before they
    reach the emulator; returns the list the attempts are counted in."""
    from botocore.awsrequest import AWSResponse
    from botocore.compat import HTTPHeaders

    attempts: list[int] = []
    body = b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow down"}'

    def send(**_: object) -> AWSResponse | None:
        attempts.append(1)
        if times is not None and len(attempts) > times:
            return None  # sent to the emulator
        headers = HTTPHeaders.from_dict(
            {"x-amzn-RequestId": "throttled", "Content-Type": "application/x-amz-json-1.0"}
        )
        return AWSResponse("http://throttled", 400, headers, _Body(body))

    sink.client.meta.events.register("before-send.dynamodb.PutItem", send)
    return attempts


@pytest.mark.integration
def test_dynamodb_throttling_is_retried_by_one_policy(
    aws_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.retries.standard import ExponentialBackoff

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)  # no waiting here
    alerts = run_engine(small_config(), [trade(1, 50_000.0, 30.0, T0)])[0].alerts
    sink = make_dynamo_sink(aws_endpoint)
    attempts = _throttle_puts(sink, times=2)
    sink.write_alerts(alerts)
    assert len(attempts) == 3 and set(_items(sink)) == set(alerts.column("alert_id").to_pylist())
    sink.close()

    sink = make_dynamo_sink(aws_endpoint)
    attempts = _throttle_puts(sink, times=None)
    with pytest.raises(SinkError) as failed:
        sink.write_alerts(alerts)
    assert len(attempts) == MAX_ATTEMPTS  # botocore's attempts only, not multiplied by a loop of ours
    assert f"failed after {MAX_ATTEMPTS} attempts: ThrottlingException" in str(failed.value)
    assert _items(sink) == {}
    sink.close()
