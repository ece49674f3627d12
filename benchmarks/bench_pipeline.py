"""Pipeline benchmarks: sustained throughput (Kinesis source -> MOD-001 + MOD-004 -> Iceberg + DynamoDB)
and latency from ``ts_sent`` to the alert's DynamoDB write at 1x and 10x replay speed.

    .venv/bin/python benchmarks/bench_pipeline.py throughput --events 300000
    .venv/bin/python benchmarks/bench_pipeline.py throughput --events 300000 --keyed-state state_store
    .venv/bin/python benchmarks/bench_pipeline.py latency --speed 1 --seconds 40
    .venv/bin/python benchmarks/bench_pipeline.py latency --speed 10 --seconds 40

Both start moto's server in a background process on 127.0.0.1, provision a 2-shard stream and the
alerts table, run ``PipelineRunner`` in ``local[2]`` with the lite profile (SQLite catalog) and print a
JSON summary.
Throughput pre-loads the stream with KPL-aggregated records and times from the end of the first
(cold) trigger to idle; over the same span it reports the CPU seconds of every process by group (this
process, the driver: ``cli``; ``emulator``; ``spark_jvm``; ``spark_planner``, the source's planner;
``spark_python``, the workers) and in all per event, which the machine's load changes far less than
the wall time. Latency replays the real Binance capture (trades and quotes) at the given
speed, stamping ``ts_sent`` when each put is sent, with the BTCUSDT whale threshold at 5,000 USD (about
2 alerts/s at 1x, 20/s at 10x on that capture), and reads ``ts_written - ts_sent`` back from DynamoDB.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks.* beside this script

from benchmarks.trigger_split import split
from coattail.run.memory import process_tree
from core.events import partition_key, to_wire
from core.histogram import LogHistogram
from infra import emulator
from infra.processes import ServerProcess
from infra.provision import StackSpec, provision
from pipeline.aws import client
from pipeline.config import Config, RuntimeSettings
from pipeline.connectors.binance import parse_binance_message
from pipeline.kpl import aggregate
from pipeline.runner import PipelineRunner
from pipeline.testkit import T0, small_config, trade

REAL_TAPES = Path(__file__).resolve().parents[2] / "shared" / "real-tapes"
CAPTURE = REAL_TAPES / "binance-ws" / "spot_btcusdt_20240808.gz"


def start_stack(tmp: Path, **settings: Any) -> tuple[ServerProcess, Config]:
    """moto in its own process, as ``coattail up`` runs it: in this one it would share the GIL with the
    driver and slow every Kinesis call the source makes."""
    endpoint = emulator.start("moto", tmp / "moto").endpoint
    server = emulator.server_process("moto", tmp / "moto")
    cfg = small_config(**settings)
    runtime = RuntimeSettings(aws_endpoint=endpoint, state_dir=tmp)
    cfg = cfg.model_copy(update={"runtime": runtime})
    provision(StackSpec.from_config(cfg), cfg.runtime)
    return server, cfg


def put_aggregated(cfg: Config, pairs: list[tuple[str, bytes]]) -> None:
    kinesis = client("kinesis", cfg.runtime)
    records = [{"PartitionKey": a.partition_key, "Data": a.data} for a in aggregate(pairs, max_bytes=200_000)]
    for k in range(0, len(records), 20):  # 20 x 200 kB stays under PutRecords' 5 MB
        resp = kinesis.put_records(StreamName=cfg.kinesis.stream, Records=records[k:k + 20])
        if resp["FailedRecordCount"]:
            raise RuntimeError(f"{resp['FailedRecordCount']} records failed")


def cpu_seconds(named: dict[int, str]) -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) so far of every process of this benchmark: pid -> (group, seconds).
    The groups are a run's memory groups (``coattail.run.memory``: ``named`` pids head groups of their
    own), with Spark's Python data source planner (where the source's ``latestOffset`` runs) apart from
    its Python workers as ``spark_planner``."""
    out: dict[int, tuple[str, float]] = {}
    for process, group in process_tree(os.getpid(), named):
        try:
            times = process.cpu_times()
            if group == "spark_python" and any("streaming_source_runner" in a for a in process.cmdline()):
                group = "spark_planner"
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        out[process.pid] = (group, times.user + times.system)
    return out


def cpu_spent(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds per group between two ``cpu_seconds`` snapshots (a process that ended between them
    is not counted: Spark reuses its Python workers, so none should)."""
    spent: dict[str, float] = {}
    for pid, (group, seconds) in after.items():
        spent[group] = spent.get(group, 0.0) + seconds - before.get(pid, (group, 0.0))[1]
    return {group: round(seconds, 2) for group, seconds in sorted(spent.items())}


def throughput(events: int, batch: int, keyed_state: str = "driver") -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-tp-"))
    server, cfg = start_stack(tmp, **{"spark.keyed_state": keyed_state})
    try:
        symbols = [f"S{i:02d}USDT" for i in range(20)]
        pairs = []
        for i in range(events):
            sym = symbols[i % len(symbols)]
            qty = 1.0 + (i % 5_000 == 0) * 20_000  # one whale in 5,000 trades
            kind, row = trade(i // len(symbols), 100.0 + (i % 7), qty, T0 + i * 100, symbol=sym)
            pairs.append((partition_key("binance", sym), to_wire(kind, row, ts_sent=T0)))
        t = time.monotonic()
        for k in range(0, len(pairs), 50_000):
            put_aggregated(cfg, pairs[k:k + 50_000])
        load_s = time.monotonic() - t
        durations: list[tuple[int, float]] = []
        first_done: list[float] = []
        stamps: dict[int, dict[str, Any]] = {}
        emulator_pid = server.read_pid()
        named = {emulator_pid: "emulator"} if emulator_pid is not None else {}
        cpu_warm: list[dict[int, tuple[str, float]]] = []

        def on_batch(result: Any) -> None:
            durations.append((result.records_in, time.monotonic()))
            stamps[result.batch_id] = {**result.timing.to_dict(), "records_in": result.records_in}
            if not first_done:
                first_done.append(time.monotonic())
                cpu_warm.append(cpu_seconds(named))

        runner = PipelineRunner(cfg, checkpoint=tmp / "ck", max_records_per_batch=batch, on_batch=on_batch)
        started = time.monotonic()
        runner.start()
        progress = runner.wait_until_idle(timeout=3_600, poll=0.05)
        warm_cpu = cpu_spent(cpu_warm[0], cpu_seconds(named))
        end = durations[-1][1]
        assert runner.query is not None
        spark_ms: dict[str, int] = {}
        for report in runner.query.recentProgress:
            for stage, ms in report["durationMs"].items():
                spark_ms[stage] = spark_ms.get(stage, 0) + ms
        reports = [json.loads(p.json) for p in runner.query.recentProgress]
        runner.stop()
        warm_records = progress.records_in - durations[0][0]
        return {
            "benchmark": "throughput", "events": events, "max_records_per_batch": batch,
            "keyed_state": keyed_state,
            "batches": progress.batches, "alerts": progress.alerts, "preload_seconds": round(load_s, 2),
            "first_batch_seconds": round(first_done[0] - started, 2),
            "warm_seconds": round(end - first_done[0], 2),
            "events_per_second_warm": round(warm_records / max(end - first_done[0], 1e-9)),
            "events_per_second_overall": round(progress.records_in / (end - started)),
            # from the end of the first trigger to idle (a few idle polls more than warm_seconds)
            "warm_cpu_seconds": warm_cpu,
            "warm_cpu_us_per_event": round(sum(warm_cpu.values()) / max(warm_records, 1) * 1e6, 1),
            "records_in": progress.records_in,
            "driver_stage_seconds": {k: round(v, 2) for k, v in progress.stage_seconds.items()},
            "spark_stage_ms": spark_ms,
            # per trigger, the warm ones (Spark keeps the last 100 reports)
            "trigger_split_ms_p50": split(reports, stamps),
        }
    finally:
        server.stop()


def capture_events() -> list[tuple[Any, dict[str, Any]]]:
    out: list[tuple[Any, dict[str, Any]]] = []
    with gzip.open(CAPTURE, "rt") as fh:
        for line in fh:
            ns, _, payload = line.partition(" ")
            out += parse_binance_message(json.loads(payload), int(ns) // 1_000)
    return out


def produce(runtime: RuntimeSettings, stream: str, speed: float, seconds: float, sent: Any) -> None:
    """Replay the capture at ``speed`` for ``seconds``: every 20 ms, put the events whose recorded time
    has come, KPL-aggregated, stamped with ``ts_sent``; count them in ``sent``."""
    events = capture_events()
    kinesis = client("kinesis", runtime)
    t0_rec = events[0][1]["ts_recv"]
    t0 = time.monotonic()
    i = 0
    while i < len(events) and time.monotonic() - t0 < seconds:
        due = t0_rec + (time.monotonic() - t0) * speed * 1e6
        chunk = []
        while i < len(events) and events[i][1]["ts_recv"] <= due:
            chunk.append(events[i])
            i += 1
        if chunk:
            now = time.time_ns() // 1_000
            pairs = [(partition_key(r["exchange"], r["symbol"]), to_wire(k, r, ts_sent=now))
                     for k, r in chunk]
            records = [{"PartitionKey": a.partition_key, "Data": a.data} for a in aggregate(pairs)]
            kinesis.put_records(StreamName=stream, Records=records)
            sent.value += len(chunk)
        time.sleep(0.02)


def latency(speed: float, seconds: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-lat-"))
    server, cfg = start_stack(tmp, **{"settings.MOD-001.thresholds_usd": {"BTCUSDT": 5_000}})
    try:
        with_rows: set[int] = set()
        runner = PipelineRunner(cfg, checkpoint=tmp / "ck",
                                on_batch=lambda r: with_rows.add(r.batch_id) if r.records_in else None)
        runner.start()
        runner.wait_until_idle(timeout=600, poll=0.05)  # the first (cold) trigger is not measured
        # the producer is another process, as an exchange feed is: in this one it would take the
        # driver's interpreter lock for every put and slow the pipeline it measures
        sent = multiprocessing.get_context("spawn").Value("q", 0)
        producer = multiprocessing.get_context("spawn").Process(
            target=produce, args=(cfg.runtime, cfg.kinesis.stream, speed, seconds, sent)
        )
        producer.start()
        producer.join()
        if producer.exitcode:
            raise RuntimeError(f"the producer process failed (exit code {producer.exitcode})")
        progress = runner.wait_until_idle(timeout=600, poll=0.05)
        assert runner.query is not None
        # Spark's numInputRows counts only what its scan read: none for a batch handed over in a file
        with_data = [r for r in runner.query.recentProgress if r["batchId"] in with_rows]
        triggers = [r["durationMs"].get("triggerExecution", 0) for r in with_data]
        spark_ms = {stage: statistics.median(r["durationMs"].get(stage, 0) for r in with_data)
                    for stage in ("latestOffset", "walCommit", "queryPlanning", "addBatch", "commitOffsets")}
        runner.stop()
        dynamo = client("dynamodb", cfg.runtime)
        items: list[dict[str, Any]] = []
        args: dict[str, Any] = {"TableName": cfg.dynamodb.alerts_table}
        while True:
            resp = dynamo.scan(**args)
            items += resp["Items"]
            if "LastEvaluatedKey" not in resp:
                break
            args["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        stamped = [i for i in items if "ts_sent" in i and int(i["ts_sent"]["N"]) > 10**15]
        written = np.array([int(i["ts_written"]["N"]) for i in stamped], dtype=np.int64)
        sent_at = np.array([int(i["ts_sent"]["N"]) for i in stamped], dtype=np.int64)
        ingest = np.array([int(i["ts_ingest"]["N"]) if "ts_ingest" in i else -1 for i in stamped],
                          dtype=np.int64)
        return {
            "benchmark": "latency", "speed": speed, "seconds": seconds, "events_sent": sent.value,
            "alerts": len(stamped),
            "sent_to_written_ms": LogHistogram.of(written - sent_at).summary_ms(),
            "ingest_to_written_ms": LogHistogram.of((written - ingest)[ingest >= 0]).summary_ms(),
            "batches": progress.batches,
            "driver_stage_seconds": {k: round(v, 2) for k, v in progress.stage_seconds.items()},
            "trigger_ms_recent": LogHistogram.of(np.array(triggers, dtype=np.int64) * 1_000).summary_ms(),
            "spark_stage_ms_p50": spark_ms,
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="mode", required=True)
    tp = sub.add_parser("throughput")
    tp.add_argument("--events", type=int, default=300_000)
    tp.add_argument("--batch", type=int, default=200_000)
    tp.add_argument("--keyed-state", choices=["driver", "state_store"], default="driver",
                    help="where per-key detector state lives (spark.keyed_state)")
    lt = sub.add_parser("latency")
    lt.add_argument("--speed", type=float, default=1.0)
    lt.add_argument("--seconds", type=float, default=40.0)
    args = parser.parse_args()
    if args.mode == "throughput":
        result = throughput(args.events, args.batch, args.keyed_state)
    else:
        result = latency(args.speed, args.seconds)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
