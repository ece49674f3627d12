"""Test kit of the alert API: a provisioned table and stream on the session's emulator, alerts written
through the real DynamoDB sink, and API Gateway v2 events shaped as AWS sends them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from infra.provision import table_definition
from pipeline.alerts import ALERT_SCHEMA, alert_id, evidence_json
from pipeline.api.app import AlertApi
from pipeline.api.store import AlertStore, ApiSettings
from pipeline.aws import client
from pipeline.config import Config, RuntimeSettings
from pipeline.sinks.dynamodb import DynamoAlertSink
from pipeline.tables import DynamoTableDef

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00Z
MINUTE = 60_000_000
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
DETECTORS = ("MOD-001", "MOD-002")
SEVERITIES = ("low", "high", "critical")
KINDS = ("whale_trade", "volume_spike")
SPECS = [
    (
        SYMBOLS[i % 3],
        DETECTORS[i % 2],
        KINDS[(i // 2) % 2],
        SEVERITIES[i % 3 if i % 5 else 2],
        T0 + i * MINUTE,
    )
    for i in range(60)
]
"""The sample: 60 alerts as ``(symbol, detector, kind, severity, ts_event)``, one a minute (distinct event
times: newest-first is a total order)."""

# An HTTP API event (payload format 2.0) as API Gateway documents it; ``gateway_event`` fills the request.
EVENT_TEMPLATE: dict[str, Any] = {
    "version": "2.0",
    "routeKey": "$default",
    "rawPath": "/",
    "rawQueryString": "",
    "cookies": [],
    "headers": {"accept": "application/json", "host": "abc123.execute-api.us-east-1.amazonaws.com"},
    "requestContext": {
        "accountId": "123456789012",
        "apiId": "abc123",
        "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "abc123",
        "http": {
            "method": "GET",
            "path": "/",
            "protocol": "HTTP/1.1",
            "sourceIp": "192.0.2.1",
            "userAgent": "agent",
        },
        "requestId": "id",
        "routeKey": "$default",
        "stage": "$default",
        "time": "12/Mar/2020:19:03:58 +0000",
        "timeEpoch": 1583348638390,
    },
    "isBase64Encoded": False,
}


def gateway_event(path: str, query: Mapping[str, str] | None = None, method: str = "GET") -> dict[str, Any]:
    """The event API Gateway passes for ``method path?query``."""
    event: dict[str, Any] = json.loads(json.dumps(EVENT_TEMPLATE))
    event["rawPath"] = path
    event["requestContext"]["http"].update(method=method, path=path)
    if query:
        event["queryStringParameters"] = dict(query)
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    return event


def provision_api(runtime: RuntimeSettings, prefix: str = "ct-api") -> ApiSettings:
    """A fresh alerts table (the layout ``coattail up`` creates) and a one-shard stream."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    settings = ApiSettings(alerts_table=f"{name}-alerts", stream=f"{name}-events", runtime=runtime)
    client("dynamodb", runtime).create_table(**table_definition(DynamoTableDef(settings.alerts_table)))
    client("kinesis", runtime).create_stream(StreamName=settings.stream, ShardCount=1)
    return settings


def alert_rows(specs: Iterable[tuple[str, str, str, str, int]]) -> pa.Table:
    """Alerts of ``(symbol, detector, kind, severity, ts_event)``, otherwise plausible."""
    rows = []
    for i, (symbol, detector, kind, severity, ts) in enumerate(specs):
        rows.append(
            {
                "alert_id": alert_id(detector, "binance", symbol, f"{ts}-{i}"),
                "detector": detector,
                "kind": kind,
                "exchange": "binance",
                "symbol": symbol,
                "ts_event": ts,
                "window_start": None,
                "window_end": None,
                "severity": severity,
                "value": 1_000_000.0 + i,
                "threshold": 500_000.0,
                "evidence": evidence_json({"trade_id": i, "price": 100.5}),
                "event_ids": [f"e{i}"],
                "ts_sent": ts + 10,
                "ts_ingest": ts + 20,
                "ts_written": None,
            }
        )
    return pa.Table.from_pylist(rows, schema=ALERT_SCHEMA)


def write_alerts(config: Config, settings: ApiSettings, alerts: pa.Table) -> None:
    """Write ``alerts`` with the pipeline's DynamoDB sink into ``settings``' table."""
    target = config.model_copy(
        update={
            "dynamodb": config.dynamodb.model_copy(update={"alerts_table": settings.alerts_table}),
            "runtime": settings.runtime,
        }
    )
    sink = DynamoAlertSink(target, threads=4)
    try:
        sink.write_alerts(alerts)
    finally:
        sink.close()


def api_for(settings: ApiSettings) -> AlertApi:
    """The handlers over ``settings``' table and stream."""
    return AlertApi(AlertStore.from_settings(settings))


@contextmanager
def throttled(settings: ApiSettings) -> Iterator[AlertApi]:
    """Handlers whose next DynamoDB query is throttled, with the client's retries spent (one attempt)."""
    from botocore.config import Config as BotoConfig
    from botocore.stub import Stubber

    dynamodb = client("dynamodb", settings.runtime, config=BotoConfig(retries={"total_max_attempts": 1}))
    layout = DynamoTableDef(settings.alerts_table)
    store = AlertStore(dynamodb, client("kinesis", settings.runtime), layout, settings.stream)
    with Stubber(dynamodb) as stub:
        stub.add_client_error("query", "ProvisionedThroughputExceededException", http_status_code=400)
        yield AlertApi(store)


def body(reply: Mapping[str, Any]) -> Any:
    """A response's JSON body."""
    return json.loads(reply["body"])
