"""Benchmark: the pipeline's tables written by Iceberg via pyiceberg, Iceberg via Spark, and Delta, in one
run on the same tape (``docs/ADR.md``'s format decision rests on these figures).

    .venv/bin/python benchmarks/bench_table_formats.py                       # whale-day, 1 h, generated
    .venv/bin/python benchmarks/bench_table_formats.py --tape T --batch 20000 --out formats.json

The tape is parsed once and run through the small tier's engine in micro-batches of ``--batch``
records (the streaming engine, state carried across batches); every batch's tables (bronze, alerts,
quarantine, metrics) then go to each writer in turn, one commit per table and batch, in a fresh ``lite``
state directory per writer. Per writer:

- ``commit_ms``: p50 / p99 / max of one batch's commit (every table of the batch), wall time;
- ``events_per_s``: the tape's events over the total commit time;
- ``files_per_market_hour`` / ``mb_per_market_hour``: data files and bytes of every table, over the
  tape's market hours (before maintenance), and the same after one maintenance run (compaction;
  pyiceberg's writer has none);
- ``read_back_s``: reading every table back whole, through the writer's own reader;
- ``exactly_once``: a restarted writer (new sink object) re-commits every batch, one by one and then
  all together: every commit must be skipped and the row counts stay what they were;
- ``rows``: each table's rows, which must be the same for every writer.

A script, not a test: nothing here asserts on time. The machine's load changes the absolute figures;
the ratios between writers come from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from rich.progress import Progress

from core.tape import Tape
from pipeline.config import Config, ConfigLoader, RuntimeSettings
from pipeline.detectors.registry import ModuleRegistry
from pipeline.engine import BatchResult, Engine
from pipeline.sinks.base import TableSink
from pipeline.sinks.delta import DeltaSink
from pipeline.sinks.iceberg import IcebergSink
from pipeline.sinks.spark_iceberg import SparkIcebergSink
from pipeline.spark import build_session
from pipeline.tables import TableDef, tables_for

WRITER = "bench:formats"
US_PER_HOUR = 3_600_000_000


def engine_batches(config: Config, parsed: pa.Table, size: int) -> list[BatchResult]:
    """The engine's results over ``parsed`` cut into micro-batches of ``size`` records."""
    engine = Engine(config, ModuleRegistry().build(config))
    results = []
    for batch_id, start in enumerate(range(0, parsed.num_rows, size)):
        results.append(engine.process(parsed.slice(start, size), batch_id))
        engine.commit(batch_id)
    return results


def data_files(root: Path) -> tuple[int, int]:
    """Parquet data files under ``root`` (Iceberg's metadata and Delta's log are not data): count, bytes."""
    files = [p for p in root.rglob("*.parquet") if "metadata" not in p.parts and "_delta_log" not in p.parts]
    return len(files), sum(p.stat().st_size for p in files)


def live_files(sink: SparkIcebergSink | DeltaSink, table: str) -> int:
    """Data files of ``table``'s current version (Delta keeps replaced files on disk until VACUUM's
    retention has passed; Iceberg's expired snapshots took theirs with them)."""
    if isinstance(sink, SparkIcebergSink):
        row = sink.spark.sql(f"SELECT count(*) AS n FROM {sink.ident(table)}.files").first()
        return int(row["n"]) if row else 0
    row = sink.spark.sql(f"DESCRIBE DETAIL delta.`{sink.path(table)}`").first()
    return int(row["numFiles"]) if row else 0


def percentiles(values: list[float]) -> dict[str, float]:
    """p50 / p99 / max of ``values`` (ms), rounded."""
    a = np.asarray(values)
    return {"p50": round(float(np.percentile(a, 50)), 1), "p99": round(float(np.percentile(a, 99)), 1),
            "max": round(float(a.max()), 1)}


def measure(
    name: str, make: Callable[[], TableSink], root: Path, results: list[BatchResult], hours: float,
    tables: tuple[TableDef, ...], progress: Progress,
) -> dict[str, Any]:
    """Commit every batch through a fresh sink of ``make``, then read back, restart and maintain."""
    sink = make()
    sink.open(tables)
    task = progress.add_task(f"{name}: commits", total=len(results))
    latencies = []
    for result in results:
        started = time.perf_counter()
        sink.write(result.batch_id, WRITER, result.tables)
        latencies.append((time.perf_counter() - started) * 1_000)
        progress.advance(task)
    events = sum(r.records_in for r in results)
    files, size = data_files(root)
    started = time.perf_counter()
    counts = {t.name: sink.read(t.name).num_rows for t in tables}  # type: ignore[attr-defined]
    read_s = time.perf_counter() - started
    again = make()
    again.open(tables)
    started = time.perf_counter()
    skipped = [again.write(r.batch_id, WRITER, r.tables) for r in results]
    regrouped = again.write_batches(WRITER, [(r.batch_id, r.tables) for r in results])
    restart_s = time.perf_counter() - started
    after = {t.name: again.read(t.name).num_rows for t in tables}  # type: ignore[attr-defined]
    started = time.perf_counter()
    maintained = {t.name: again.maintain(t.name) for t in tables if counts[t.name]}
    maintain_s = time.perf_counter() - started
    files_after, size_after = data_files(root)
    if isinstance(again, SparkIcebergSink | DeltaSink):
        files_after = sum(live_files(again, t) for t in maintained)
    return {
        "commit_ms": percentiles(latencies),
        "commits": len(latencies),
        "events": events,
        "events_per_s": round(events / (sum(latencies) / 1_000)),
        "files_per_market_hour": round(files / hours, 1),
        "mb_per_market_hour": round(size / hours / 1e6, 3),
        "read_back_s": round(read_s, 2),
        "exactly_once": {
            "every_recommit_skipped": not any(any(w.values()) for w in [*skipped, regrouped]),
            "rows_unchanged": after == counts,
            "restart_recommit_s": round(restart_s, 2),
        },
        "maintenance": {
            "seconds": round(maintain_s, 2),
            "live_files_per_market_hour_after": round(files_after / hours, 1),
            "mb_on_disk_per_market_hour_after": round(size_after / hours / 1e6, 3),
            "ran": bool(any(maintained.values())),
        },
        "rows": counts,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tape", type=Path, default=None, help="tape to write (default: generate whale-day)")
    parser.add_argument("--duration", default="1h", help="generated tape: market time (default 1h)")
    parser.add_argument("--batch", type=int, default=20_000, help="records per micro-batch (default 20000)")
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=None, help="JSON result (default: stdout only)")
    args = parser.parse_args(argv)

    tape = args.tape
    if tape is None:
        from coattail.commands.run import _demo_tape

        tape = _demo_tape(args.runs / "tapes" / f"whale-day-{args.duration}-x1-s7", args.duration, 1.0, 7)
    manifest = Tape.open(tape).manifest
    hours = (manifest.end_us - manifest.start_us) / US_PER_HOUR
    base = ConfigLoader().load("small", env={})
    work = Path(tempfile.mkdtemp(prefix="bench-formats-"))
    spark, _ = build_session(base, app_name="bench-table-formats", local_dir=work / "spark")
    from pipeline.source import register_sources

    register_sources(spark)
    parsed = spark.read.format("coattail-tape").option("parse", "true").load(str(tape)).toArrow()
    results = engine_batches(base, parsed, args.batch)
    tables = tables_for(ModuleRegistry().build(base))

    def lite(name: str, **storage: Any) -> Config:
        cfg = base.model_copy(update={"storage": base.storage.model_copy(update=storage)})
        return cfg.model_copy(update={"runtime": RuntimeSettings(profile="lite", state_dir=work / name)})

    # maintenance runs once, explicitly, after the commits: the figures of the commits are the writers'
    writers: dict[str, tuple[Callable[[], TableSink], Path]] = {
        "iceberg-pyiceberg": (lambda: IcebergSink(lite("pyiceberg", maintenance_every_commits=0)),
                              work / "pyiceberg" / "iceberg" / "warehouse"),
        "iceberg-spark": (lambda: SparkIcebergSink(lite("spark", maintenance_every_commits=0), spark),
                          work / "spark" / "iceberg" / "warehouse"),
        "delta": (lambda: DeltaSink(lite("delta", maintenance_every_commits=0), spark),
                  work / "delta" / "delta"),
    }
    out: dict[str, Any] = {
        "tape": str(tape), "events": parsed.num_rows, "market_hours": round(hours, 3), "batch": args.batch,
        "micro_batches": len(results), "load_average": os.getloadavg(), "cpus": os.cpu_count(),
    }
    with Progress() as progress:
        for name, (make, root) in writers.items():
            out[name] = measure(name, make, root, results, hours, tables, progress)
    rows = {name: out[name]["rows"] for name in writers}
    out["same_rows_everywhere"] = len({json.dumps(r, sort_keys=True) for r in rows.values()}) == 1
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
