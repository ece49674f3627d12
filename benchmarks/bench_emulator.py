"""The emulator's CPU per GetRecords: moto's own server (``moto.server``) against the stack's
(``infra.moto.server``), in one run, on the same records.

    .venv/bin/python benchmarks/bench_emulator.py --events 200000 --repeat 3

Each server runs in its own process on 127.0.0.1 with a 1-shard stream loaded with KPL-aggregated
trades (200 kB records, as ``bench_pipeline.py`` loads them); the shard is then read from its start
``--repeat`` times, 10 records (about 2 MB, the source's page) per GetRecords, and the server process's
CPU seconds (user + system, ``psutil``) are taken around each read. Prints the best read per server,
their ratio and whether both answered the same bytes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

import boto3
import psutil

from core.events import partition_key, to_wire
from infra.processes import LOOPBACK, free_port, port_accepts
from pipeline.kpl import aggregate
from pipeline.testkit import T0, trade

SERVERS = ("moto.server", "infra.moto.server")


def serve_and_read(module: str, records: list[dict[str, Any]], repeat: int) -> tuple[float, list[bytes]]:
    """(best CPU seconds of the server over one full read of the shard, the data read)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "-H", LOOPBACK, "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not port_accepts(port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{module} did not answer on port {port}")
            time.sleep(0.2)
        kinesis: Any = boto3.client(
            "kinesis", endpoint_url=f"http://{LOOPBACK}:{port}", region_name="us-east-1",
            aws_access_key_id="bench", aws_secret_access_key="bench",
        )
        kinesis.create_stream(StreamName="bench", ShardCount=1)
        for k in range(0, len(records), 20):
            kinesis.put_records(StreamName="bench", Records=records[k : k + 20])
        shard = kinesis.list_shards(StreamName="bench")["Shards"][0]["ShardId"]
        server = psutil.Process(proc.pid)
        best, data = float("inf"), list[bytes]()
        for _ in range(repeat):
            before = sum(server.cpu_times()[:2])
            it = kinesis.get_shard_iterator(
                StreamName="bench", ShardId=shard, ShardIteratorType="TRIM_HORIZON"
            )
            cursor, data = it["ShardIterator"], []
            while True:
                page = kinesis.get_records(ShardIterator=cursor, Limit=10)
                data += [r["Data"] for r in page["Records"]]
                cursor = page["NextShardIterator"]
                if not page["Records"]:
                    break
            best = min(best, sum(server.cpu_times()[:2]) - before)
        return best, data
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    symbols = [f"S{i:02d}USDT" for i in range(20)]
    pairs = [
        (partition_key("binance", symbols[i % 20]),
         to_wire(*trade(i // 20, 100.0, 1.0, T0 + i * 100, symbol=symbols[i % 20]), ts_sent=T0))
        for i in range(args.events)
    ]
    records = [{"PartitionKey": a.partition_key, "Data": a.data} for a in aggregate(pairs, max_bytes=200_000)]
    cpu, reads = {}, {}
    for module in SERVERS:
        cpu[module], reads[module] = serve_and_read(module, records, args.repeat)
    result = {
        "benchmark": "emulator", "events": args.events, "kinesis_records": len(records),
        "server_cpu_seconds": {m: round(s, 3) for m, s in cpu.items()},
        "cpu_ratio_stack_to_moto": round(cpu[SERVERS[1]] / cpu[SERVERS[0]], 3),
        "same_bytes": reads[SERVERS[0]] == reads[SERVERS[1]] == [r["Data"] for r in records],
    }
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
