"""Benchmark: state-store mode's driver bytes and Spark actions per trigger, per table writer, in one run.

    .venv/bin/python benchmarks/bench_keyed_writes.py                         # medium, whale-day 30 min
    .venv/bin/python benchmarks/bench_keyed_writes.py --tape T --batch 20000 --out keyed.json

The same tape goes through the streaming pipeline (tape source, ``spark.keyed_state: state_store``,
micro-batches of ``--batch`` records, a fresh ``lite`` state per variant) three times in one Spark
session:

- ``pyiceberg``: the driver collects the whole per-key output and pyiceberg commits it (the default);
- ``spark-collected``: the same collect, Spark's Iceberg writer commits the driver's Arrow tables (what
  ``storage.writer: spark`` did before the executors wrote);
- ``spark-executors``: the driver collects only its tables and the counts; the executors append the
  bronze and per-instrument tables (``pipeline.keyed_writes``).

Per variant: events/s from start to idle; per trigger the bytes collected to the driver
(``BatchTiming.collected_bytes``) and the trigger's wall time (started -> routed); per Spark action
besides the first collect (``BatchTiming.actions_us``) its count and p50 / max; and each table's row
count, which must be the same for every variant.

A script, not a test: nothing here asserts on time. The ratios between variants come from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from core.tape import Tape
from pipeline.config import Config, ConfigLoader, RuntimeSettings
from pipeline.engine import BatchResult
from pipeline.runner import PipelineRunner
from pipeline.sinks.base import TableSink
from pipeline.sinks.iceberg import IcebergSink
from pipeline.sinks.memory import MemoryAlertSink
from pipeline.sinks.spark_iceberg import SparkIcebergSink
from pipeline.spark import build_session


def summary(values: list[float]) -> dict[str, float]:
    """p50 / max / mean of ``values``, rounded."""
    a = np.asarray(values, dtype=float)
    return {"p50": round(float(np.percentile(a, 50)), 1), "max": round(float(a.max()), 1),
            "mean": round(float(a.mean()), 1)}


def measure(name: str, config: Config, sink: TableSink, tape: Path, work: Path, batch: int,
            spark: Any) -> dict[str, Any]:
    """One streaming run of ``tape`` into ``sink``: throughput, per-trigger bytes and actions, rows."""
    results: list[BatchResult] = []
    runner = PipelineRunner(config, checkpoint=work / name / "checkpoint", source=tape, spark=spark,
                            table_sinks=[sink], alert_sinks=[MemoryAlertSink()], max_records_per_batch=batch,
                            on_batch=results.append)
    if name == "spark-collected":
        runner.keyed_writes = None  # the path before executor-side writes, for the comparison
    started = time.perf_counter()
    progress = runner.run(until_idle=True, timeout=24 * 3600)
    elapsed = time.perf_counter() - started
    timings = [r.timing for r in results if r.timing is not None]
    actions: dict[str, list[float]] = defaultdict(list)
    for t in timings:
        for action, us in t.actions_us.items():
            actions[action].append(us / 1_000)
    sink.open(runner.tables())
    return {
        "events": progress.records_in,
        "triggers": len(timings),
        "seconds": round(elapsed, 1),
        "events_per_s": round(progress.records_in / elapsed),
        "collected_bytes_per_trigger": summary([t.collected_bytes for t in timings]),
        "trigger_ms": summary([(t.routed_us - t.started_us) / 1_000 for t in timings]),
        "collect_ms": summary([(t.collected_us - t.started_us) / 1_000 for t in timings]),
        "actions_ms": {a: {"count": len(v), **summary(v)} for a, v in sorted(actions.items())},
        "rows": {t.name: sink.read(t.name).num_rows for t in runner.tables()},  # type: ignore[attr-defined]
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tier", default="medium", help="a tier (run in state_store mode; default medium)")
    parser.add_argument("--batch", type=int, default=20_000, help="records per micro-batch (default 20000)")
    parser.add_argument("--tape", type=Path, default=None, help="tape (default: generate whale-day)")
    parser.add_argument("--duration", default="30m", help="generated tape: market time (default 30m)")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="where generated tapes are kept")
    parser.add_argument("--out", type=Path, default=None, help="JSON result (default: stdout only)")
    args = parser.parse_args(argv)
    from coattail.commands.run import _demo_tape

    name = f"whale-day-{args.duration}-x1-s7"  # the tape bench_table_formats and bench_e2e generate
    tape = args.tape or _demo_tape(args.runs / "tapes" / name, args.duration, 1.0, 7)
    base = ConfigLoader().load(args.tier, env={})
    listed = base.instruments.listed_names(Tape.open(tape).instruments())
    config = ConfigLoader().load(args.tier, env={}, overrides={
        "spark.keyed_state": "state_store", **({"instruments": listed} if listed else {})})
    work = Path(tempfile.mkdtemp(prefix="bench-keyed-writes-"))
    spark, _ = build_session(config, app_name="bench-keyed-writes", local_dir=work / "spark")

    def lite(name: str, writer: str) -> Config:
        storage = config.storage.model_copy(update={"writer": writer, "maintenance_every_commits": 0})
        runtime = RuntimeSettings(profile="lite", state_dir=work / name)
        return config.model_copy(update={"storage": storage, "runtime": runtime})

    sinks: dict[str, TableSink] = {
        "pyiceberg": IcebergSink(lite("pyiceberg", "pyiceberg")),
        "spark-collected": SparkIcebergSink(lite("spark-collected", "spark"), spark),
        "spark-executors": SparkIcebergSink(lite("spark-executors", "spark"), spark),
    }
    out: dict[str, Any] = {
        "tape": str(tape), "tier": args.tier, "batch": args.batch, "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    with Progress() as progress:
        task = progress.add_task("variants", total=len(sinks))
        for name, sink in sinks.items():
            progress.update(task, description=name)
            out[name] = measure(name, lite(name, "spark" if "spark" in name else "pyiceberg"), sink, tape,
                                work, args.batch, spark)
            progress.advance(task)
    out["load_average_after"] = os.getloadavg()
    out["same_rows_everywhere"] = len({json.dumps(out[n]["rows"], sort_keys=True) for n in sinks}) == 1
    report = json.dumps(out, indent=2) + "\n"
    if args.out:
        args.out.write_text(report)
    print(report, end="")
    return 0 if out["same_rows_everywhere"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
