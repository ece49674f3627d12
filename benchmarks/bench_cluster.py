"""Local mode beside the local Spark cluster: the same tape, the same tier, in one benchmark run.

For each placement (``local``: the pipeline in this process on ``spark.local.master``; ``cluster``: the
job package submitted with spark-submit to a Spark standalone cluster of a master and two 1-core
workers, started here and stopped at the end) two whole runs of the same tape (``coattail.run``), as
in ``bench_e2e``: a throughput run at ``--speed`` (events/s from the first record sent until the
pipeline processed the last) and a latency run paced at ``--latency-speed`` (alerts: sent -> written).
Both placements must give the same alerts and tables (each run is also judged against the reference).

    .venv/bin/python benchmarks/bench_cluster.py --tier medium --out bench-cluster.json
    .venv/bin/python benchmarks/bench_cluster.py --package DIR   # an existing `coattail package` output
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from coattail.commands.run import _demo_tape  # noqa: E402
from coattail.run.judge import pipeline_outputs  # noqa: E402
from coattail.run.orchestrate import RunRequest, RunResult, execute  # noqa: E402
from coattail.run.progress import RichSteps  # noqa: E402
from coattail.validate.agreement import compare_with_reference  # noqa: E402
from core.histogram import LogHistogram  # noqa: E402
from infra import cluster  # noqa: E402
from infra.package import Package, build_package  # noqa: E402
from pipeline.config import ConfigLoader  # noqa: E402
from replay.clock import parse_speed  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tape", type=Path, help="tape to replay (default: the tier's generated demo tape)")
    parser.add_argument("--duration", default="30m", help="generated tape: market time (default 30m)")
    parser.add_argument("--scale", type=float, default=0.3, help="generated tape: volume scale (default 0.3)")
    parser.add_argument("--tier", default="medium", choices=("small", "medium"))
    parser.add_argument("--keyed-state", choices=("driver", "state_store"), help="default: the tier's")
    parser.add_argument("--speed", default="max", help="throughput runs' speed (default max)")
    parser.add_argument("--latency-speed", default="60x", help="latency runs' speed (default 60x)")
    parser.add_argument("--package", type=Path, help="job package (default: built into a temporary dir)")
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=Path("bench-cluster.json"))
    args = parser.parse_args(argv)

    name = f"{args.tier}-demo-{args.duration}-x{args.scale:g}-s7"
    tape = args.tape or _demo_tape(args.runs / "tapes" / name, args.duration, args.scale, 7, args.tier)
    overrides = {"spark.keyed_state": args.keyed_state} if args.keyed_state else {}
    config = ConfigLoader().load(args.tier, overrides=overrides)
    state_dir = Path(os.environ.get("COATTAIL_STATE_DIR", ".coattail"))
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        package = Package.open(args.package) if args.package else build_package(config, Path(tmp) / "package")
        try:
            master = cluster.up(state_dir)
            assert master.state is not None
            results: dict[str, dict[str, RunResult]] = {}
            for placement in ("local", "cluster"):
                on_cluster = {"cluster": master.state.master_url, "package": package.path}
                for kind, speed in (("throughput", args.speed), ("latency", args.latency_speed)):
                    request = RunRequest(
                        tapes=(tape,), tier=args.tier, speed=parse_speed(speed), runs_root=args.runs,
                        name=f"bench-{placement}-{kind}", overrides=overrides,
                        **(on_cluster if placement == "cluster" else {}),  # type: ignore[arg-type]
                    )  # fmt: skip
                    with RichSteps() as steps:
                        results.setdefault(placement, {})[kind] = execute(request, steps)
        finally:
            cluster.down(state_dir)

    figures: dict[str, Any] = {}
    for placement, runs in results.items():
        summary = runs["throughput"].judgement.summary
        alerts = pl.read_parquet(runs["latency"].run.path / "pipeline" / "alerts.parquet")
        figures[placement] = {
            "runs": {kind: run.run.run_id for kind, run in runs.items()},
            "throughput_eps": summary["throughput_eps"],
            "timings_s": summary["timings_s"],
            "latency_ms": {"sent_to_written": _alert_latency(alerts)},
            "validation_ok": all(run.ok for run in runs.values()),
        }
    throughput_runs = [results[p]["throughput"].run for p in ("cluster", "local")]
    agreement = compare_with_reference(*(pipeline_outputs(run) for run in throughput_runs))
    local, remote = figures["local"], figures["cluster"]
    result = {
        "tape": str(tape),
        "tier": args.tier,
        "keyed_state": config.spark.keyed_state,
        "speed": {"throughput": args.speed, "latency": args.latency_speed},
        "events": results["local"]["throughput"].judgement.summary["events"],
        "load_average_at_start": [round(x, 2) for x in load],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "local": local,
        "cluster": remote,
        "cluster_over_local": {
            "throughput": round(remote["throughput_eps"] / local["throughput_eps"], 3),
            "latency_p50": _ratio(remote, local, "p50"),
            "latency_p99": _ratio(remote, local, "p99"),
        },
        "same_tables_and_alerts": agreement.ok,
    }
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    shown = ("events", "cluster_over_local", "same_tables_and_alerts")
    print(json.dumps({k: result[k] for k in shown}, indent=2))
    print(f"result: {args.out}")
    return 0 if agreement.ok and local["validation_ok"] and remote["validation_ok"] else 2


def _alert_latency(alerts: pl.DataFrame) -> dict[str, float | None]:
    """Alerts' ``ts_sent`` -> ``ts_written`` (ms): the one latency both placements stamp (a cluster's job
    reports no per-event measurement back to this process)."""
    stamped = alerts.filter(pl.col("ts_sent").is_not_null() & pl.col("ts_written").is_not_null())
    return LogHistogram.of((stamped["ts_written"] - stamped["ts_sent"]).to_numpy()).summary_ms()


def _ratio(a: dict[str, Any], b: dict[str, Any], pct: str) -> float | None:
    x, y = a["latency_ms"]["sent_to_written"][pct], b["latency_ms"]["sent_to_written"][pct]
    return round(x / y, 3) if x is not None and y else None


if __name__ == "__main__":
    sys.exit(main())
