"""A real Binance capture through the emulator's Kinesis, the source, MOD-001 + MOD-004 and the real
sinks (Iceberg and DynamoDB), for both local profiles."""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from core.events import partition_key, to_wire
from infra.provision import StackSpec, provision
from pipeline.aws import client
from pipeline.config import RuntimeSettings
from pipeline.connectors.binance import parse_binance_message
from pipeline.kpl import aggregate
from pipeline.runner import PipelineRunner
from pipeline.sinks.dynamodb import DynamoAlertSink
from pipeline.sinks.iceberg import IcebergSink
from pipeline.testkit import alerts_of, dq_sums, run_engine, small_config
from tests.conftest import REAL_TAPES

pytestmark = [pytest.mark.spark, pytest.mark.integration, pytest.mark.e2e]
CAPTURE = REAL_TAPES / "binance-ws" / "spot_btcusdt_20240808.gz"
EVENTS = 3_000


def binance_events() -> list[tuple[Any, dict[str, Any]]]:
    """The first EVENTS trades and quotes of the capture, in receive order."""
    out: list[tuple[Any, dict[str, Any]]] = []
    with gzip.open(CAPTURE, "rt") as fh:
        for line in fh:
            ns, _, payload = line.partition(" ")
            out += parse_binance_message(json.loads(payload), int(ns) // 1_000)
            if len(out) >= EVENTS:
                return out[:EVENTS]
    return out


@pytest.mark.parametrize("profile", ["lite", "mirror"])
def test_real_binance_capture_end_to_end(spark: Any, aws_endpoint: str, tmp_path: Path, profile: str) -> None:
    tag = uuid.uuid4().hex[:8]
    cfg = small_config(**{"settings.MOD-001.thresholds_usd": {"BTCUSDT": 5_000}})
    cfg = cfg.model_copy(update={
        "kinesis": cfg.kinesis.model_copy(update={"stream": f"binance-{tag}"}),
        "dynamodb": cfg.dynamodb.model_copy(update={"alerts_table": f"alerts-{tag}"}),
        "storage": cfg.storage.model_copy(update={"warehouse_bucket": f"wh-{tag}", "namespace": f"ns_{tag}"}),
        "runtime": RuntimeSettings(profile=profile, aws_endpoint=aws_endpoint,
                                   state_dir=tmp_path),
    })
    provision(StackSpec.from_config(cfg), cfg.runtime)
    events = binance_events()
    datas = [to_wire(kind, row, ts_sent=1) for kind, row in events] + [b'{"v":1,"type":"trade"}']
    keys = [partition_key(row["exchange"], row["symbol"]) for _, row in events] + ["binance:BTCUSDT"]
    records = [{"PartitionKey": a.partition_key, "Data": a.data}
               for a in aggregate(list(zip(keys, datas, strict=True)), max_bytes=50_000)]
    kinesis = client("kinesis", cfg.runtime)
    for k in range(0, len(records), 200):
        resp = kinesis.put_records(StreamName=cfg.kinesis.stream, Records=records[k:k + 200])
        assert resp["FailedRecordCount"] == 0

    runner = PipelineRunner(cfg, checkpoint=tmp_path / "ck", spark=spark, max_records_per_batch=1_000)
    progress = runner.run(until_idle=True, timeout=600)
    assert progress.records_in == len(datas) == progress.valid + progress.quarantined
    assert progress.quarantined == 1

    expected = run_engine(cfg, [*events, datas[-1]])
    iceberg = IcebergSink(cfg)
    trades = iceberg.read("trades")
    assert trades.num_rows == sum(1 for kind, _ in events if kind == "trade")
    assert iceberg.read("quotes").num_rows == sum(1 for kind, _ in events if kind == "quote")
    assert iceberg.read("quarantine").column("reason").to_pylist() == ["MISSING_FIELD"]
    alerts = iceberg.read("alerts")
    want = list(alerts_of(expected)["alert_id"])
    assert want, "the lowered threshold must make real whales fire"
    assert sorted(alerts.column("alert_id").to_pylist()) == want
    dq: dict[tuple[Any, ...], int] = {}
    for row in iceberg.read("dq_metrics").to_pylist():
        key = (row["exchange"], row["symbol"], row["window_start"], row["reason"])
        dq[key] = dq.get(key, 0) + row["count"]
    assert dq == dq_sums(expected)
    items = DynamoAlertSink(cfg).client.scan(TableName=cfg.dynamodb.alerts_table)["Items"]
    assert sorted(i["alert_id"]["S"] for i in items) == want
    for item in items:
        assert int(item["ts_written"]["N"]) >= int(item["ts_ingest"]["N"]) > 0
