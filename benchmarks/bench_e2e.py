"""End-to-end benchmark with the promotion gate (one checkout; ``coattail bench`` compares two).

Runs two whole replays of the same tape through the pipeline on the local stack (``coattail.run``):

- the throughput run at ``--speed`` (default max): events per second from the first record sent until
  the pipeline processed the last one; its per-event figures are queueing (every event was due at the
  start) and are reported apart, as ``queueing``;
- the latency run, paced at ``--latency-speed`` (default 60x): every event's latency by stage from its
  scheduled send time (``coattail.run.latency``: replay, Kinesis, wait for the trigger, trigger, sinks;
  to results and to committed rows; alerts sent -> DynamoDB written);

with the peak memory of each run's processes (``coattail.run.memory``: total RSS and by group), and
compares them with the tier's promotion budgets (``coattail.bench.gate``). Writes a JSON result and
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

from coattail.bench.gate import speed_misses
from coattail.commands.stack import parse_sets
from coattail.run.orchestrate import RunRequest, execute
from coattail.run.progress import RichSteps
from pipeline.config import ConfigLoader
from replay.clock import parse_speed


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
    result: dict[str, Any] = {
        "runs": {"throughput": throughput_run.run.run_id, "latency": latency_run.run.run_id},
        "tapes": [str(t) for t in tapes],
        "tier": args.tier,
        "overrides": args.set,
        "speed": {"throughput": args.speed, "latency": args.latency_speed},
        "events": summary["events"],
        "throughput_eps": summary["throughput_eps"],
        "timings_s": summary["timings_s"],
        "memory": summary["memory"],
        "latency_ms": latency_run.judgement.summary["latency_ms"],
        "queueing_ms": summary["latency_ms"],
        "alerts": summary["alerts"],
        "validation_ok": throughput_run.ok and latency_run.ok,
        "budgets": config.budgets.model_dump(),
        "report": str(latency_run.run.path / "report.html"),
    }
    missed = speed_misses(result["throughput_eps"], result["latency_ms"], result["budgets"])
    result["gate"] = {"passed": not missed, "missed": missed}
    out = args.out or throughput_run.run.path / "bench_e2e.json"
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    figures = {k: result[k] for k in ("events", "throughput_eps", "memory", "gate")}
    figures["latency_ms"] = result["latency_ms"]["stages"]
    print(json.dumps(figures, indent=2))
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
