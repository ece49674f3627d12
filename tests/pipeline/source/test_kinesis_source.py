"""The Kinesis source on the emulator: KPL de-aggregation, bounded micro-batches, every record exactly
once, deterministic re-read of a batch after a restart, resharding followed, and streaming = batch."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pipeline.aws import client
from pipeline.config import Config, RuntimeSettings
from pipeline.kpl import MAGIC, aggregate
from pipeline.runner import PipelineRunner
from pipeline.sinks.memory import MemoryAlertSink, MemoryTableSink
from pipeline.source.kinesis_reader import read_range
from pipeline.testkit import T0, Item, alerts_of, dq_sums, payloads, run_engine, small_config, trade

pytestmark = [pytest.mark.spark, pytest.mark.integration]


def stream_config(endpoint: str, tmp: Path) -> Config:
    cfg = small_config(**{"settings.MOD-001.default_threshold_usd": 2_000})
    name = f"events-{uuid.uuid4().hex[:8]}"
    return cfg.model_copy(update={
        "kinesis": cfg.kinesis.model_copy(update={"stream": name}),
        "runtime": RuntimeSettings(aws_endpoint=endpoint, state_dir=tmp),
    })


def create_stream(cfg: Config, shards: int = 2) -> Any:
    kinesis = client("kinesis", cfg.runtime)
    kinesis.create_stream(StreamName=cfg.kinesis.stream, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=cfg.kinesis.stream)
    return kinesis


def events(lo: int, hi: int) -> list[Item]:
    """Trades of three keys; every 10th one a whale (notional 2,500 against 2,000)."""
    out: list[Item] = []
    for i in range(lo, hi):
        sym = ("XRPUSDT", "ADAUSDT", "DOTUSDT")[i % 3]
        out.append(trade(i // 3, 1.0, 2_500.0 if i % 10 == 0 else 1.0, T0 + i * 1_000, symbol=sym))
    return out


def put(kinesis: Any, cfg: Config, items: list[Item], aggregated: bool) -> int:
    """Put the items (KPL-aggregated in chunks of 7 per key, or one per record); user records put."""
    pairs = [(f"binance:{i[1]['symbol']}" if not isinstance(i, bytes) else "bad", d)
             for i, d in zip(items, payloads(items, ts_sent=T0), strict=True)]
    if aggregated:
        records = []
        for k in range(0, len(pairs), 21):
            records += [{"PartitionKey": a.partition_key, "Data": a.data}
                        for a in aggregate(pairs[k:k + 21], max_bytes=1_200)]
    else:
        records = [{"PartitionKey": k, "Data": d} for k, d in pairs]
    for k in range(0, len(records), 400):
        resp = kinesis.put_records(StreamName=cfg.kinesis.stream, Records=records[k:k + 400])
        assert resp["FailedRecordCount"] == 0
    return len(pairs)


def runner(cfg: Config, ckpt: Path, spark: Any, sinks: tuple[MemoryTableSink, MemoryAlertSink],
           size: int = 60) -> PipelineRunner:
    return PipelineRunner(cfg, checkpoint=ckpt, source="kinesis", spark=spark, table_sinks=[sinks[0]],
                          alert_sinks=[sinks[1]], max_records_per_batch=size)


@pytest.mark.parametrize("driver_read_max", [0, 20_000], ids=["executor-tasks", "driver-handover"])
def test_every_record_once_with_bounded_batches_and_restart(
    spark: Any, aws_endpoint: str, tmp_path: Path, driver_read_max: int
) -> None:
    cfg = stream_config(aws_endpoint, tmp_path)
    cfg = cfg.model_copy(update={"spark": cfg.spark.model_copy(
        update={"driver_read_max_records": driver_read_max})})
    kinesis = create_stream(cfg)
    first = events(0, 150)
    n = put(kinesis, cfg, first, aggregated=True)
    n += put(kinesis, cfg, [b"{not json", b"\x00"], aggregated=False)
    kinesis.put_record(StreamName=cfg.kinesis.stream, PartitionKey="x", Data=MAGIC + b"corrupt aggregate" * 2)
    n += 1
    sinks = (MemoryTableSink(), MemoryAlertSink())
    sizes: list[int] = []
    r1 = runner(cfg, tmp_path / "ck", spark, sinks)
    r1.on_batch = lambda result: sizes.append(result.records_in)
    progress = r1.run(until_idle=True, timeout=300)
    assert progress.records_in == n == progress.valid + progress.quarantined
    assert progress.quarantined == 3
    assert max(sizes) <= 60 and len(sizes) >= 3
    assert all(progress.shards_caught_up.values())
    # driver mode takes small batches from the planner's files, which are all gone once taken
    handover = tmp_path / "ck" / "handover"
    assert handover.is_dir() == bool(driver_read_max) and not any(handover.glob("*"))

    # more data, a new process on the same checkpoint, with its last batch re-run (commit lost)
    second = events(150, 240)
    n2 = put(kinesis, cfg, second, aggregated=True)
    r2 = runner(cfg, tmp_path / "ck", spark, sinks)
    assert r2.run(until_idle=True, timeout=300).records_in == n2
    commits = tmp_path / "ck" / "query" / "commits"
    last = max(int(p.name) for p in commits.iterdir() if p.name.isdigit())
    (commits / str(last)).unlink()
    (commits / f".{last}.crc").unlink(missing_ok=True)
    r3 = runner(cfg, tmp_path / "ck", spark, sinks)
    rerun = r3.run(until_idle=True, timeout=300)
    assert rerun.batches == 1 and rerun.records_in > 0  # the lost batch, re-read from Kinesis

    trades = sinks[0].read("trades")
    assert trades.num_rows == 240  # each event once, the re-run batch skipped by the table sink
    expected = run_engine(cfg, first + second)
    assert sorted(sinks[1].items) == list(alerts_of(expected)["alert_id"])
    got_dq = {k: v for k, v in _dq(sinks[0]).items() if k[3] not in ("PARSE_ERROR",)}
    assert got_dq == dq_sums(expected)


def _dq(tables: MemoryTableSink) -> dict[tuple[Any, ...], int]:
    out: dict[tuple[Any, ...], int] = {}
    for row in tables.read("dq_metrics").to_pylist():
        key = (row["exchange"], row["symbol"], row["window_start"], row["reason"])
        out[key] = out.get(key, 0) + row["count"]
    return out


def test_split_shard_is_followed_in_order(spark: Any, aws_endpoint: str, tmp_path: Path) -> None:
    cfg = stream_config(aws_endpoint, tmp_path)
    kinesis = create_stream(cfg, shards=1)
    before = events(0, 90)
    put(kinesis, cfg, before, aggregated=False)
    shard = kinesis.list_shards(StreamName=cfg.kinesis.stream)["Shards"][0]
    lo, hi = int(shard["HashKeyRange"]["StartingHashKey"]), int(shard["HashKeyRange"]["EndingHashKey"])
    kinesis.split_shard(StreamName=cfg.kinesis.stream, ShardToSplit=shard["ShardId"],
                        NewStartingHashKey=str((lo + hi) // 2))
    after = events(90, 180)
    put(kinesis, cfg, after, aggregated=True)
    sinks = (MemoryTableSink(), MemoryAlertSink())
    progress = runner(cfg, tmp_path / "ck", spark, sinks, size=50).run(until_idle=True, timeout=300)
    assert progress.records_in == 180
    assert len(progress.shards_caught_up) == 3  # both children listed (moto keeps writing to the parent)
    expected = run_engine(cfg, before + after)
    assert _dq(sinks[0]) == dq_sums(expected)  # no spurious gaps, duplicates or late events
    assert sorted(sinks[1].items) == list(alerts_of(expected)["alert_id"])


def test_read_range_is_deterministic(aws_endpoint: str, tmp_path: Path) -> None:
    cfg = stream_config(aws_endpoint, tmp_path)
    kinesis = create_stream(cfg, shards=1)
    put(kinesis, cfg, events(0, 60), aggregated=True)
    shard_id = kinesis.list_shards(StreamName=cfg.kinesis.stream)["Shards"][0]["ShardId"]
    it = kinesis.get_shard_iterator(StreamName=cfg.kinesis.stream, ShardId=shard_id,
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    last_seq = kinesis.get_records(ShardIterator=it)["Records"][-1]["SequenceNumber"]
    everything = read_range(kinesis, cfg.kinesis.stream, shard_id, None, last_seq)
    rows = pa.Table.from_batches(list(everything.to_batches(shard_id)))
    assert len(everything) == rows.num_rows == 60
    assert rows.column("sub_sequence").to_pylist()[:3] == [0, 1, 2]
    assert sorted(rows.column("data").to_pylist()) == sorted(payloads(events(0, 60), ts_sent=T0))
    mid = everything.seqs[len(everything.seqs) // 2]
    first = read_range(kinesis, cfg.kinesis.stream, shard_id, None, mid)
    rest = read_range(kinesis, cfg.kinesis.stream, shard_id, mid, last_seq)
    assert first.datas + rest.datas == everything.datas
    assert read_range(kinesis, cfg.kinesis.stream, shard_id, None, mid).datas == first.datas
