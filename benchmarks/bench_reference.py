"""Benchmark: the Polars reference (``coattail.reference``) over whole tapes, total and per step.

    .venv/bin/coattail sim generate --scenario market-day --scale 0.6 --out /tmp/market-day
    .venv/bin/python benchmarks/bench_reference.py --tape /tmp/market-day [--tape ANOTHER] [--rounds 2]
    .venv/bin/python benchmarks/bench_reference.py --tape /tmp/market-day --tier medium
    .venv/bin/python benchmarks/bench_reference.py --tape /tmp/market-day --arrival [--faults F.yaml]

For each tape: reading it (``from_tape``), the shared annotation, each small-tier module on its own
(MOD-001 whales, MOD-002 volume, MOD-003 spread metrics and alerts, MOD-004 counts) and then the whole
``run_reference`` of ``--tier`` as every run computes it. Each figure is the best of ``--rounds``, as wall
seconds and as this process's CPU seconds (user + system): on a loaded shared machine the wall time
measures the load, the CPU time much less so. ``share`` is each step's part of the steps' sum;
``peak_rss_mib`` is the process's peak memory so far (give one tape per invocation to read it per
tape). Prints one JSON line per tape. A script, not a test: nothing here asserts on time.

``--arrival``: instead, the reference as ``coattail run`` computes it (``coattail.run.judge.
reference_outputs``: the tape replayed into memory with the run's faults and seed, then the detectors),
its wall and CPU seconds and the process's peak RSS above what it held before. A whole day peaks above
4 GiB: run it under the shared lock (``flock /tmp/s7/day.lock ...``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import polars as pl
import psutil

from coattail.reference import from_tape, run_reference
from coattail.reference.data_quality import dq_counts, quarantine_counts
from coattail.reference.spread import closed_quotes, spread_alerts, spread_metrics
from coattail.reference.stream import annotate, closing_limits
from coattail.reference.volume_anomaly import volume_alerts
from coattail.reference.whale import whale_alerts
from coattail.run.judge import reference_outputs
from core.tape import Tape
from pipeline.config import Config, ConfigLoader, TierName
from replay.faults import FaultSpec, load_fault_spec

T = TypeVar("T")


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(figures: dict[str, dict[str, float]], name: str, step: Callable[[], T]) -> T:
    """Run ``step``; keep its best wall and CPU seconds under ``name``."""
    wall0, cpu0 = time.perf_counter(), _cpu_s()
    result = step()
    wall, cpu = time.perf_counter() - wall0, _cpu_s() - cpu0
    best = figures.setdefault(name, {"wall_s": wall, "cpu_s": cpu})
    best["wall_s"], best["cpu_s"] = min(best["wall_s"], wall), min(best["cpu_s"], cpu)
    return result


def one_round(path: Path, config: Config, figures: dict[str, dict[str, float]]) -> tuple[int, int]:
    """Each step once, then the whole reference; (events, alerts)."""
    small = ConfigLoader().load("small", env={})
    settings = small.settings_for
    delay = small.spark.watermark_seconds
    frame = timed(figures, "load", lambda: from_tape(Tape.open(path)))
    # as run_reference: the market rows are the whole frame unless the tape has transfers
    is_transfer = pl.col("kind") == "transfer"
    market = frame.filter(~is_transfer) if frame.select(is_transfer.any()).item() else frame
    annotated = timed(
        figures, "annotate", lambda: annotate(market, watermark_seconds=delay, instruments=small.instruments)
    )
    limits = timed(figures, "closing_limits", lambda: closing_limits(annotated, delay))
    timed(figures, "MOD-001", lambda: whale_alerts(annotated, cast(Any, settings("MOD-001"))))
    timed(figures, "MOD-002", lambda: volume_alerts(annotated, limits, cast(Any, settings("MOD-002"))))

    def spread() -> None:
        quotes = closed_quotes(annotated, limits, cast(Any, settings("MOD-003")))
        metrics = spread_metrics(quotes, cast(Any, settings("MOD-003")))
        spread_alerts(quotes, metrics, cast(Any, settings("MOD-003")))

    def quality() -> None:
        dq_counts(annotated, cast(Any, settings("MOD-004")))
        quarantine_counts(frame, cast(Any, settings("MOD-004")))

    timed(figures, "MOD-003", spread)
    timed(figures, "MOD-004", quality)
    outputs = timed(figures, f"run_reference[{config.tier}]", lambda: run_reference(frame, config))
    return frame.height, outputs.alerts.num_rows


def bench_tape(path: Path, tier: TierName, rounds: int) -> dict[str, Any]:
    """Per-step and total figures of the reference over one tape."""
    config = ConfigLoader().load(tier, env={})
    figures: dict[str, dict[str, float]] = {}
    events = alerts = 0
    for _ in range(max(1, rounds)):
        events, alerts = one_round(path, config, figures)
    steps = {k: v for k, v in figures.items() if not k.startswith("run_reference")}
    step_sum = sum(v["wall_s"] for v in steps.values())
    total = figures[f"run_reference[{tier}]"]
    return {
        "tape": str(path),
        "events": events,
        "alerts": alerts,
        "tier": tier,
        "load_plus_run_wall_s": round(figures["load"]["wall_s"] + total["wall_s"], 2),
        "load_plus_run_cpu_s": round(figures["load"]["cpu_s"] + total["cpu_s"], 2),
        "steps": {
            name: {
                "wall_s": round(v["wall_s"], 2),
                "cpu_s": round(v["cpu_s"], 2),
                "share": round(v["wall_s"] / step_sum, 3) if name in steps else None,
            }
            for name, v in figures.items()
        },
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "load_average": os.getloadavg()[0],
        "polars_threads": pl.thread_pool_size(),
    }


def bench_arrival(path: Path, tier: TierName, faults: FaultSpec | None) -> dict[str, Any]:
    """The run's reference phase over one tape: seconds and peak memory."""
    config = ConfigLoader().load(tier, env={})
    before = round(psutil.Process().memory_info().rss / 2**20)
    wall0, cpu0 = time.perf_counter(), _cpu_s()
    outputs, labels = reference_outputs([path], config, faults, None)
    return {
        "tape": str(path),
        "tier": tier,
        "path": "arrival (coattail run's reference phase)",
        "events": outputs.records_in,
        "alerts": outputs.alerts.num_rows,
        "fault_labels": len(labels),
        "wall_s": round(time.perf_counter() - wall0, 2),
        "cpu_s": round(_cpu_s() - cpu0, 2),
        "rss_before_mib": before,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "load_average": os.getloadavg()[0],
        "polars_threads": pl.thread_pool_size(),
    }


def main() -> None:
    """Time the reference over each ``--tape``; one JSON line each."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tape", type=Path, action="append", required=True)
    parser.add_argument("--tier", default="small", choices=["small", "medium", "large"])
    parser.add_argument("--rounds", type=int, default=1, help="runs per tape, the best kept")
    parser.add_argument("--arrival", action="store_true", help="the run's reference phase instead")
    parser.add_argument("--faults", type=Path, help="with --arrival: the run's fault spec (YAML)")
    args = parser.parse_args()
    if args.arrival:
        faults = load_fault_spec(args.faults) if args.faults is not None else None
        for path in args.tape:
            print(json.dumps(bench_arrival(path, args.tier, faults)), flush=True)
        return
    for path in args.tape:
        print(json.dumps(bench_tape(path, args.tier, args.rounds)), flush=True)


if __name__ == "__main__":
    main()
