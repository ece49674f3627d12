"""End-to-end benchmark with the promotion gate.

Runs two whole replays of the same tape through the pipeline on the local stack (``coattail.run``):

- the throughput run at ``--speed`` (default max): events per second from the first record sent until
  the pipeline processed the last one;
- the latency run, paced at ``--latency-speed`` (default 60x), because at max speed every alert waits
  behind the whole tape and the figure measures the queue, not the pipeline: latency per stage from the
  alerts' stamps, ``ts_sent -> ts_ingest`` (replay to Kinesis arrival), ``ts_ingest -> ts_written``
  (pipeline: fetch, detect, DynamoDB write) and ``ts_sent -> ts_written``;

and compares them with the tier's promotion budgets (``Config.budgets``). Writes a JSON result and
points at the run's HTML report; exits 1 when a budget is missed (the gate), 2 when the run itself
failed validation.

    .venv/bin/python benchmarks/bench_e2e.py                      # generated whale-day tape
    .venv/bin/python benchmarks/bench_e2e.py --tape T --latency-speed 10x --out bench.json
    .venv/bin/python benchmarks/bench_e2e.py --set storage.writer=spark      # or storage.format=delta
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from coattail.commands.stack import parse_sets
from coattail.run.orchestrate import RunRequest, execute
from coattail.run.progress import RichSteps
from pipeline.config import ConfigLoader
from replay.clock import parse_speed

STAGES = {
    "sent_to_ingest": ("ts_sent", "ts_ingest"),
    "ingest_to_written": ("ts_ingest", "ts_written"),
    "sent_to_written": ("ts_sent", "ts_written"),
}


def stage_latencies(alerts: pl.DataFrame) -> dict[str, dict[str, float | None]]:
    """p50/p90/p99/max in ms for each stage, over the alerts that carry both stamps."""
    out: dict[str, dict[str, float | None]] = {}
    for name, (start, end) in STAGES.items():
        rows = alerts.filter(pl.col(start).is_not_null() & pl.col(end).is_not_null())
        values = ((rows[end] - rows[start]) / 1_000).to_numpy().astype(float) if rows.height else np.empty(0)
        if values.size == 0:
            out[name] = {"p50": None, "p90": None, "p99": None, "max": None, "count": 0}
            continue
        out[name] = {
            "p50": float(np.percentile(values, 50)),
            "p90": float(np.percentile(values, 90)),
            "p99": float(np.percentile(values, 99)),
            "max": float(values.max()),
            "count": int(values.size),
        }
    return out


def gate(result: dict[str, Any], budgets: dict[str, float]) -> list[str]:
    """The budgets missed, as sentences (empty when the change may be promoted)."""
    missed = []
    eps = result["throughput_eps"] or 0.0
    if eps < budgets["min_throughput_eps"]:
        missed.append(f"throughput {eps:,.0f} events/s < budget {budgets['min_throughput_eps']:,.0f}")
    latency = result["latency_ms"]["sent_to_written"]
    for pct, key in (("p50", "max_latency_p50_ms"), ("p99", "max_latency_p99_ms")):
        value = latency[pct]
        if value is None:
            missed.append(f"latency {pct}: no alert carried both stamps, nothing measured")
        elif value > budgets[key]:
            missed.append(f"latency {pct} {value:,.0f} ms > budget {budgets[key]:,.0f} ms")
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tape", type=Path, action="append", help="tape(s) to replay (default: generate)")
    parser.add_argument("--duration", default="1h", help="generated tape: market time (default 1h)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="generated tape: volume scale (default 1.0)"
    )
    parser.add_argument("--tier", default="small")
    parser.add_argument("--speed", default="max", help="throughput run's speed (default max)")
    parser.add_argument("--latency-speed", default="60x", help="latency run's speed (default 60x)")
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=None, help="JSON result (default: <run>/bench_e2e.json)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override, as coattail's --set (e.g. storage.writer=spark)")
    args = parser.parse_args(argv)
    overrides = parse_sets(args.set)

    tapes = args.tape
    if not tapes:
        from coattail.commands.run import _demo_tape

        tapes = [
            _demo_tape(
                args.runs / "tapes" / f"whale-day-{args.duration}-x{args.scale:g}-s7",
                args.duration,
                args.scale,
                7,
            )
        ]
    config = ConfigLoader().load(args.tier, overrides=overrides)

    def run_at(speed: str, name: str) -> Any:
        request = RunRequest(
            tapes=tuple(tapes), tier=args.tier, speed=parse_speed(speed), runs_root=args.runs, name=name,
            overrides=overrides,
        )
        with RichSteps() as steps:
            return execute(request, steps)

    throughput_run = run_at(args.speed, "bench-throughput")
    latency_run = run_at(args.latency_speed, "bench-latency")
    summary = throughput_run.judgement.summary
    alerts = pl.read_parquet(latency_run.run.path / "pipeline" / "alerts.parquet")
    result: dict[str, Any] = {
        "runs": {"throughput": throughput_run.run.run_id, "latency": latency_run.run.run_id},
        "tapes": [str(t) for t in tapes],
        "tier": args.tier,
        "overrides": args.set,
        "speed": {"throughput": args.speed, "latency": args.latency_speed},
        "events": summary["events"],
        "throughput_eps": summary["throughput_eps"],
        "timings_s": summary["timings_s"],
        "latency_ms": stage_latencies(alerts),
        "alerts": summary["alerts"],
        "validation_ok": throughput_run.ok and latency_run.ok,
        "budgets": config.budgets.model_dump(),
        "report": str(latency_run.run.path / "report.html"),
    }
    missed = gate(result, result["budgets"])
    result["gate"] = {"passed": not missed, "missed": missed}
    out = args.out or throughput_run.run.path / "bench_e2e.json"
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps({k: result[k] for k in ("events", "throughput_eps", "latency_ms", "gate")}, indent=2))
    print(f"result: {out}\nreport: {result['report']}")
    if not result["validation_ok"]:
        print("a benchmark run failed validation", file=sys.stderr)
        return 2
    if missed:
        print("promotion gate: FAILED\n  " + "\n  ".join(missed), file=sys.stderr)
        return 1
    print("promotion gate: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
