"""Generator benchmark: a 1-day, 3-symbol tape (goal >= 2M events/s, end to end including Parquet).

    .venv/bin/python benchmarks/bench_sim.py                      # 1d, BTC/ETH/SOL on binance+coinbase
    .venv/bin/python benchmarks/bench_sim.py --duration 6h --exchanges binance --json out.json

Prints events, wall seconds and events/s (Parquet writing included: it runs in a thread next to the
generation), and CPU seconds of both threads (the fairer figure on a shared machine). The tape goes to
a temporary directory unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.timefmt import parse_duration, parse_time  # noqa: E402
from pipeline.config import ConfigLoader  # noqa: E402
from sim.generator import GenerateSpec, generate  # noqa: E402
from sim.scenario import load_scenario  # noqa: E402


def main() -> None:
    """Run the benchmark and print (and optionally save) its figures."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="whale-day")
    ap.add_argument("--duration", default="1d")
    ap.add_argument("--symbols", default="BTCUSDT,ETHUSDT,SOLUSDT")
    ap.add_argument("--exchanges", default="binance,coinbase")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    config = ConfigLoader().load("small", env={})
    spec = GenerateSpec(
        load_scenario(args.scenario),
        tuple(args.symbols.split(",")),
        tuple(args.exchanges.split(",")),
        parse_time("2026-01-01T00:00Z", "--start"),
        parse_duration(args.duration),
        7,
        args.scale,
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "tape"
        t0, c0 = time.perf_counter(), time.process_time()
        manifest = generate(spec, config, out, overwrite=True)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    events = sum(manifest.rows.values())
    result = {
        "benchmark": "sim.generate",
        "duration": args.duration,
        "instruments": len(spec.symbols) * len(spec.exchanges),
        "events": events,
        "rows": manifest.rows,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds),
        "cpu_seconds": round(cpu, 3),
        "events_per_cpu_s": round(events / cpu),
        "load_average_1m": os.getloadavg()[0],
        "goal_events_per_s": 2_000_000,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
