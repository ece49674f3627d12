"""Producer benchmark: Binance trades from the replay's WebSocket server through one producer into Kinesis.

    .venv/bin/python benchmarks/bench_producer.py                      # max speed and paced, 200k trades
    .venv/bin/python benchmarks/bench_producer.py --events 400000 --speeds max,1x --json out.json

For each speed: events/s through the producer (events it had on the stream over the wall time from the
replay's start to its last put) and the added latency p50/p99/max from the replay's WebSocket send to the
Kinesis put (``replay.via_ws``). The tape is a generated minute of trades on 20 Binance spot symbols
(``bench_replay.busy_minute``; ``--events`` per minute of exchange time, so ``1x`` sends that many per
minute). moto runs in its own process, as ``coattail up`` runs it; the replay's server and the producer
share this process (two event-loop threads), so the figures are a lower bound of a producer alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_replay import _stream, busy_minute, moto_server  # noqa: E402
from pipeline.config import RuntimeSettings  # noqa: E402
from pipeline.producer.settings import load_producer_settings  # noqa: E402
from replay.clock import parse_speed  # noqa: E402
from replay.via_ws import replay_through_producer  # noqa: E402


def bench(tape: Path, speeds: list[str]) -> dict[str, Any]:
    """One fresh 2-shard stream per speed."""
    out: dict[str, Any] = {}
    settings = load_producer_settings()
    with moto_server() as (endpoint, _, client):
        for text in speeds:
            stream = _stream(client, f"bench-producer-{text}")
            t0 = time.monotonic()
            summary, report = replay_through_producer(
                [tape], settings, RuntimeSettings(aws_endpoint=endpoint), stream, speed=parse_speed(text)
            )
            elapsed = time.monotonic() - t0
            lat_ms = report.send_to_put_us / 1e3
            out[text] = {
                "sent": summary.sent,
                "events_out": report.stats.events_out,
                "seconds": round(elapsed, 2),
                "events_per_s": round(report.stats.events_out / elapsed),
                "send_to_put_ms": {
                    "p50": round(float(np.percentile(lat_ms, 50)), 1),
                    "p99": round(float(np.percentile(lat_ms, 99)), 1),
                    "max": round(float(lat_ms.max()), 1),
                },
                "gaps": report.stats.gaps,
                "bad_messages": report.stats.bad_messages,
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000, help="Trades in the generated minute.")
    parser.add_argument("--speeds", default="max,1x", help="Comma-separated: max, 1x, 2x, ...")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tape = busy_minute(Path(tmp) / "trades", events=args.events, trades_only=True)
        results = {
            "tape": f"busy minute, {args.events} Binance spot trades on 20 symbols",
            **bench(tape, args.speeds.split(",")),
        }
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
