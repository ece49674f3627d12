"""State-store mode (``spark.keyed_state: state_store``) against driver mode and the batch run, on a tape:
same content in every table for several micro-batch sizes, and a restart in the middle of the tape
gives the same Iceberg contents and alerts as an uninterrupted run."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from core.errors import PipelineError
from core.events import partition_key, to_wire
from infra.provision import StackSpec, provision
from pipeline.aws import client
from pipeline.config import Config, RuntimeSettings
from pipeline.kpl import aggregate
from pipeline.runner import PipelineRunner
from pipeline.sinks.dynamodb import DynamoAlertSink
from pipeline.sinks.iceberg import IcebergSink
from pipeline.sinks.memory import MemoryAlertSink, MemoryTableSink
from pipeline.testkit import T0, Item, dq_sums, payloads, run_engine, trade
from tests.pipeline.keyed_kit import contents, crash_after, keyed_config, rows, write_tape
from tests.pipeline.test_e2e_binance import binance_events

pytestmark = pytest.mark.spark
TRANSPORT = ("ts_ingest", "shard_id", "sequence_number", "sub_sequence")
"""Where a record came from: Kinesis positions and arrival stamps, which the reference run has not."""
STAMPS = ("ts_written", "ts_ingest")
DRIVER, KEYED = keyed_config("driver"), keyed_config("state_store")


@pytest.fixture(scope="module")
def tape(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tape(tmp_path_factory.mktemp("keyed-tape") / "t")


def stream(
    cfg: Config, tape: Path, ckpt: Path, spark: Any, size: int
) -> tuple[MemoryTableSink, MemoryAlertSink]:
    tables, alerts = MemoryTableSink(), MemoryAlertSink()
    runner = PipelineRunner(cfg, checkpoint=ckpt, source=tape, spark=spark, table_sinks=[tables],
                            alert_sinks=[alerts], max_records_per_batch=size)
    progress = runner.run(until_idle=True, timeout=300)
    assert progress.records_in == 240 == progress.valid + progress.quarantined
    assert progress.quarantined == 1 and progress.batches == -(-240 // size)
    return tables, alerts


def test_state_store_equals_driver_streaming_and_batch(spark: Any, tape: Path, tmp_path: Path) -> None:
    batch_tables, batch_alerts = MemoryTableSink(), MemoryAlertSink()
    runner = PipelineRunner(DRIVER, checkpoint=tmp_path / "b", source=tape, spark=spark,
                            table_sinks=[batch_tables], alert_sinks=[batch_alerts])
    runner.run_batch(runner.tape_batch(tape))
    names = [t.name for t in runner.tables()]
    expected = contents(batch_tables, names, dq_summed=True)
    detectors = {a["detector"] for a in batch_alerts.items.values()}
    assert detectors == {"MOD-001", "MOD-002", "MOD-003", "MOD-006", "MOD-007", "MOD-008", "MOD-009"}
    assert expected["spread_metrics"] and expected["whale_impact"]
    for size in (80, 240):
        keyed, keyed_alerts = stream(KEYED, tape, tmp_path / f"k{size}", spark, size)
        driver, _ = stream(DRIVER, tape, tmp_path / f"d{size}", spark, size)
        # same split: every row of every table, dq_metrics included, is the same
        assert contents(keyed, names) == contents(driver, names), f"micro-batch size {size}"
        assert contents(keyed, names, dq_summed=True) == expected, f"micro-batch size {size}"
        assert set(keyed_alerts.items) == set(batch_alerts.items)
        assert not (tmp_path / f"k{size}" / "state").exists()  # no driver-side state in this mode


def _iceberg(tmp: Path) -> IcebergSink:
    return IcebergSink(KEYED.model_copy(update={"runtime": RuntimeSettings(state_dir=tmp)}))


def test_restart_in_the_middle_gives_the_same_iceberg_contents(
    spark: Any, tape: Path, tmp_path: Path
) -> None:
    whole_alerts = MemoryAlertSink()
    whole = PipelineRunner(KEYED, checkpoint=tmp_path / "ck-whole", source=tape, spark=spark,
                           table_sinks=[_iceberg(tmp_path / "whole")], alert_sinks=[whole_alerts],
                           max_records_per_batch=80)
    whole.run(until_idle=True, timeout=300)
    names = [t.name for t in whole.tables()]

    ckpt, alerts = tmp_path / "ck", MemoryAlertSink()

    def runner() -> PipelineRunner:
        return PipelineRunner(KEYED, checkpoint=ckpt, source=tape, spark=spark, alert_sinks=[alerts],
                              table_sinks=[_iceberg(tmp_path / "restart")], max_records_per_batch=80)

    crash_after(runner(), 2)
    runner().run(until_idle=True, timeout=300)
    assert contents(_iceberg(tmp_path / "restart"), names) == contents(_iceberg(tmp_path / "whole"), names)
    assert set(alerts.items) == set(whole_alerts.items)
    # the other mode on this checkpoint would silently lose the detector state: refused
    with pytest.raises(PipelineError, match="holds state-store detector state"):
        PipelineRunner(DRIVER, checkpoint=ckpt, source=tape, spark=spark, table_sinks=[MemoryTableSink()],
                       alert_sinks=[MemoryAlertSink()]).start()


@pytest.mark.integration
@pytest.mark.e2e
def test_state_store_mode_from_kinesis_with_the_real_sinks(
    spark: Any, aws_endpoint: str, tmp_path: Path
) -> None:
    """A real Binance capture plus a key arriving out of time order and unreadable records, through the
    emulator's Kinesis (2 shards, KPL aggregates), the keyed step, Iceberg and DynamoDB."""
    tag = uuid.uuid4().hex[:8]
    cfg = keyed_config("state_store", **{"settings.MOD-001.thresholds_usd": {"BTCUSDT": 5_000}})
    assert partition_key("binance", "ETHUSDT") == "binance:ETHUSDT"
    cfg = cfg.model_copy(update={
        "kinesis": cfg.kinesis.model_copy(update={"stream": f"keyed-{tag}"}),
        "dynamodb": cfg.dynamodb.model_copy(update={"alerts_table": f"keyed-{tag}"}),
        "storage": cfg.storage.model_copy(update={"namespace": f"keyed_{tag}"}),
        "runtime": RuntimeSettings(aws_endpoint=aws_endpoint, state_dir=tmp_path),
    })
    provision(StackSpec.from_config(cfg), cfg.runtime)
    items: list[Item] = []
    keys: list[str] = []
    for i, event in enumerate(binance_events()[:1_200]):
        items.append(event)
        keys.append("binance:BTCUSDT")
        if i % 10 == 0:  # ETHUSDT over 6 minutes with a volume spike; some events jump back in time:
            # late events, whose verdict needs arrival order
            ts = T0 + i * 300_000 - (i % 30 == 0) * 25_000_000
            items.append(trade(i, 2_000.0, 1.0 + (i % 7) + (600 <= i < 700) * 50, ts, symbol="ETHUSDT"))
            keys.append("binance:ETHUSDT")
        if i % 400 == 0:  # unreadable (no key) and a zero-size trade (quarantined under its key)
            items += [b"{", b'{"v":1,"type":"trade"}', to_wire(*trade(i, 2_000.0, 0.0, T0, symbol="ETHUSDT"))]
            keys += ["binance:BTCUSDT", "binance:ETHUSDT", "binance:ETHUSDT"]
    pairs = list(zip(keys, payloads(items), strict=True))
    records = [{"PartitionKey": a.partition_key, "Data": a.data} for a in aggregate(pairs, max_bytes=20_000)]
    kinesis = client("kinesis", cfg.runtime)
    for k in range(0, len(records), 200):
        resp = kinesis.put_records(StreamName=cfg.kinesis.stream, Records=records[k:k + 200])
        assert resp["FailedRecordCount"] == 0

    runner = PipelineRunner(cfg, checkpoint=tmp_path / "ck", spark=spark, max_records_per_batch=600)
    progress = runner.run(until_idle=True, timeout=300)
    assert progress.records_in == len(items) == progress.valid + progress.quarantined
    assert progress.batches >= 2 and not (tmp_path / "ck" / "state").exists()

    expected = run_engine(cfg, items)  # driver mode over the put order, which is each key's shard order
    iceberg = IcebergSink(cfg)
    for name in ("trades", "quotes", "quarantine"):
        want = pa.concat_tables([r.tables[name] for r in expected])
        got = iceberg.read(name).select(want.column_names)  # without the Iceberg partition column
        assert rows(got, drop=TRANSPORT) == rows(want, drop=TRANSPORT), name
    for name in ("alerts", "spread_metrics"):
        want = pa.concat_tables([r.tables[name] for r in expected])
        got = iceberg.read(name).select(want.column_names)
        assert rows(got, drop=STAMPS) == rows(want, drop=STAMPS), name
    assert dq_sums(expected) == contents(iceberg, ["dq_metrics"], dq_summed=True)["dq_metrics"]
    late = {k for k in dq_sums(expected) if k[1] == "ETHUSDT" and k[3] == "LATE_EVENT"}
    alerts = iceberg.read("alerts").to_pylist()
    assert late and {"MOD-001", "MOD-002"} <= {a["detector"] for a in alerts}
    items_ddb = DynamoAlertSink(cfg).client.scan(TableName=cfg.dynamodb.alerts_table)["Items"]
    assert sorted(i["alert_id"]["S"] for i in items_ddb) == sorted(a["alert_id"] for a in alerts)
