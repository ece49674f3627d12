"""Alert API benchmark: requests/s and latency of ``GET /alerts?symbol=...&limit=100`` with 100k alerts
in the table, through the local HTTP adapter (``coattail api serve``) against moto's DynamoDB.

Starts its own moto server on 127.0.0.1 (state in a temporary directory), creates the alerts table as
``coattail up`` does, loads ``--alerts`` items as the DynamoDB sink shapes them (``to_item``; loaded
with BatchWriteItem, which is only faster, not different), then sends ``--requests`` requests from
``--concurrency`` keep-alive clients and prints (and with ``--out`` writes) the figures as JSON. The
same queries are also timed against the handler directly, so the HTTP adapter's share shows.

    .venv/bin/python benchmarks/bench_api.py
    .venv/bin/python benchmarks/bench_api.py --alerts 20000 --concurrency 4 --out bench-api.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from coattail.api_server import make_server
from infra import emulator
from infra.provision import table_definition
from pipeline.alerts import alert_id, evidence_json
from pipeline.api.app import AlertApi
from pipeline.api.store import AlertStore, ApiSettings
from pipeline.aws import client
from pipeline.config import RuntimeSettings
from pipeline.sinks.dynamodb import to_item
from pipeline.tables import DynamoTableDef

T0 = 1_767_225_600_000_000
BATCH = 25  # BatchWriteItem's limit


def alert(i: int, symbols: int) -> dict[str, Any]:
    """The i-th synthetic alert: a whale trade on one of ``symbols`` symbols, one every 10 ms."""
    symbol = f"SYM{i % symbols:03d}USDT"
    return {
        "alert_id": alert_id("MOD-001", "binance", symbol, i),
        "detector": "MOD-001" if i % 3 else "MOD-002",
        "kind": "whale_trade",
        "exchange": "binance",
        "symbol": symbol,
        "ts_event": T0 + i * 10_000,
        "window_start": None,
        "window_end": None,
        "severity": ("low", "medium", "high", "critical")[i % 4],
        "value": 1_000_000.0 + i,
        "threshold": 500_000.0,
        "evidence": evidence_json({"trade_id": i, "price": 65_000.5, "qty": 15.4, "side": "buy"}),
        "event_ids": [f"binance:{symbol}:t:{i}"],
        "ts_sent": T0 + i * 10_000 + 50,
        "ts_ingest": T0 + i * 10_000 + 90,
    }


def load(settings: ApiSettings, count: int, symbols: int) -> float:
    """Put ``count`` alerts into the table (4 writers); seconds it took."""
    layout = DynamoTableDef(settings.alerts_table)
    started = time.perf_counter()

    def write(batch: range) -> None:
        dynamodb = client("dynamodb", settings.runtime)
        items = [{"PutRequest": {"Item": to_item(alert(i, symbols), T0 + i, 24, layout)}} for i in batch]
        pending = {settings.alerts_table: items}
        while pending:
            pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}

    batches = [range(a, min(a + BATCH, count)) for a in range(0, count, BATCH)]
    with Progress() as bar, ThreadPoolExecutor(4) as pool:
        task = bar.add_task(f"loading {count:,} alerts", total=count)
        for done in pool.map(write, batches):
            del done
            bar.advance(task, BATCH)
    return time.perf_counter() - started


def figures(latencies_s: list[float], wall_s: float) -> dict[str, float]:
    """Requests/s and latency percentiles (ms)."""
    ms = np.asarray(latencies_s) * 1_000
    return {
        "requests": len(ms),
        "requests_per_s": round(len(ms) / wall_s, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p90_ms": round(float(np.percentile(ms, 90)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
    }


def over_http(port: int, paths: list[str], concurrency: int) -> dict[str, float]:
    """Send ``paths`` from ``concurrency`` keep-alive connections; every answer must be a full page."""
    latencies: list[float] = []
    lock = threading.Lock()
    shares = [paths[i::concurrency] for i in range(concurrency)]

    def client_loop(share: list[str]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        for path in share:
            started = time.perf_counter()
            connection.request("GET", path)
            reply = connection.getresponse()
            page = json.loads(reply.read())
            mine.append(time.perf_counter() - started)
            if reply.status != 200 or page["count"] != 100:
                raise RuntimeError(f"{path}: {reply.status} {str(page)[:200]}")
        connection.close()
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(client_loop, shares))
    return figures(latencies, time.perf_counter() - started)


def direct(api: AlertApi, paths: list[str]) -> dict[str, float]:
    """The same queries through the handler alone, one at a time."""
    latencies = []
    started = time.perf_counter()
    for path in paths:
        symbol = path.split("symbol=")[1].split("&")[0]
        event = {"rawPath": "/alerts", "queryStringParameters": {"symbol": symbol, "limit": "100"},
                 "requestContext": {"http": {"method": "GET", "path": "/alerts"}}}  # fmt: skip
        t = time.perf_counter()
        api.handle(event)
        latencies.append(time.perf_counter() - t)
    return figures(latencies, time.perf_counter() - started)


def main() -> None:
    """Run the benchmark and print its JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--symbols", type=int, default=20)
    # moto walks the whole table for every index query (seconds each at 100k): keep the default short
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-api-") as state:
        moto = emulator.start("moto", Path(state))
        try:
            runtime = RuntimeSettings(aws_endpoint=moto.endpoint, state_dir=Path(state))
            settings = ApiSettings(alerts_table="bench-alerts", stream="bench-events", runtime=runtime)
            client("dynamodb", runtime).create_table(
                **table_definition(DynamoTableDef(settings.alerts_table))
            )
            client("kinesis", runtime).create_stream(StreamName=settings.stream, ShardCount=1)
            load_s = load(settings, args.alerts, args.symbols)
            api = AlertApi(AlertStore.from_settings(settings))
            rng = random.Random(7)
            paths = [
                f"/alerts?symbol=SYM{rng.randrange(args.symbols):03d}USDT&limit=100"
                for _ in range(args.requests)
            ]
            server = make_server(api, 0)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            try:
                over_http(server.server_address[1], paths[:50], args.concurrency)  # warm-up
                http_figures = over_http(server.server_address[1], paths, args.concurrency)
            finally:
                server.shutdown()
                server.server_close()
            result = {
                "alerts": args.alerts,
                "symbols": args.symbols,
                "concurrency": args.concurrency,
                "load_s": round(load_s, 1),
                "http": http_figures,
                "handler_direct": direct(api, paths[: max(args.requests // 4, 1)]),
            }
        finally:
            emulator.server_process("moto", Path(state)).stop()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
