"""Benchmark: does a pyiceberg table's append get slower as a long run's commits pile up, and does
maintenance (``IcebergSink.maintain``) keep it flat?

    .venv/bin/python benchmarks/bench_iceberg_commits.py --commits 2000 --every 0,20,100

One small batch (``--rows`` trades, the shape of a paced micro-batch's ``trades`` table) is appended
``--commits`` times, each under the next batch id, to one table through ``IcebergSink`` on the ``lite``
catalog (SQLite + local files, what a local run writes), once per ``--every`` value (the sink's
``storage.maintenance_every_commits``; 0: no maintenance), each in a fresh state directory. Reported per
mode, at each of ``--at`` commits: the median wall and CPU ms (this thread's) of the appends in a window
of ``--window`` commits ending there (maintenance excluded), the current metadata file's size and the
manifest list's length; over all appends the mean wall and CPU ms and the three slowest (a manifest
merge shows there); plus every maintenance run's wall ms. One JSON document on stdout. A script,
not a test: nothing here asserts on time; the machine's load changes absolute figures, so compare the
modes of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from rich.console import Console
from rich.progress import Progress

from pipeline.config import Config, RuntimeSettings
from pipeline.sinks.iceberg import IcebergSink
from pipeline.tables import TRADES
from pipeline.testkit import T0, run_engine, small_config, trade

WRITER = "bench:iceberg-commits"


class _TimedSink(IcebergSink):
    """``IcebergSink`` that times its maintenance runs apart from the appends."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.maintenance_ms: list[float] = []

    def maintain(self, table: str) -> dict[str, int]:
        started = time.perf_counter()
        done = super().maintain(table)
        self.maintenance_ms.append((time.perf_counter() - started) * 1_000)
        return done


def table_state(sink: IcebergSink) -> dict[str, int]:
    """The trades table's metadata file size, manifest list length and snapshot count now."""
    handle = sink.catalog.load_table(f"{sink.namespace}.{TRADES.name}")
    snapshot = handle.current_snapshot()
    manifests = len(snapshot.manifests(handle.io)) if snapshot else 0
    return {"metadata_bytes": Path(urlparse(handle.metadata_location).path).stat().st_size,
            "manifests": manifests, "snapshots": len(handle.snapshots())}


def measure(every: int, commits: int, rows: int, at: list[int], window: int, work: Path,
            progress: Progress) -> dict[str, Any]:
    """Append ``commits`` batches with maintenance every ``every`` commits; the figures at ``at``."""
    base = small_config()
    config = base.model_copy(update={
        "storage": base.storage.model_copy(update={"maintenance_every_commits": every}),
        "runtime": RuntimeSettings(profile="lite", state_dir=work / f"every-{every}"),
    })
    data = run_engine(base, [trade(i, 100.0 + i % 7, 1.0, T0 + i) for i in range(rows)])[0].tables["trades"]
    sink = _TimedSink(config)
    sink.open([TRADES])
    wall: list[float] = []
    cpu: list[float] = []
    points: dict[int, dict[str, Any]] = {}
    task = progress.add_task(f"every {every}: appends", total=commits)
    for batch_id in range(commits):
        maintained = len(sink.maintenance_ms)
        started, started_cpu = time.perf_counter(), time.thread_time()
        sink.write(batch_id, WRITER, {TRADES.name: data})
        spent = (time.perf_counter() - started) * 1_000
        spent_cpu = (time.thread_time() - started_cpu) * 1_000
        if len(sink.maintenance_ms) > maintained:  # the append's own time, without the maintenance after it
            spent_cpu *= 1 - sink.maintenance_ms[-1] / spent
            spent -= sink.maintenance_ms[-1]
        wall.append(spent)
        cpu.append(spent_cpu)
        if batch_id + 1 in at:
            span = slice(max(0, batch_id + 1 - window), batch_id + 1)
            points[batch_id + 1] = {"append_ms_p50": round(float(np.median(wall[span])), 1),
                                    "append_cpu_ms_p50": round(float(np.median(cpu[span])), 1),
                                    **table_state(sink)}
        progress.advance(task)
    rows_read = sink.read(TRADES.name).num_rows
    runs = sink.maintenance_ms
    return {
        "at_commit": points,
        "append_ms_mean": round(float(np.mean(wall)), 1),
        "append_cpu_ms_mean": round(float(np.mean(cpu)), 1),
        "slowest_appends_ms": {int(i) + 1: round(wall[i], 1) for i in np.argsort(wall)[-3:][::-1]},
        "maintenance_runs": len(runs),
        "maintenance_ms_p50": round(float(np.median(runs)), 1) if runs else None,
        "maintenance_ms_max": round(max(runs), 1) if runs else None,
        "rows_complete": rows_read == commits * data.num_rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=2_000, help="appends per mode (default 2000)")
    parser.add_argument("--rows", type=int, default=40, help="trades per append (default 40)")
    parser.add_argument("--every", default="0,20,100",
                        help="maintenance_every_commits values, comma-separated (default 0,20,100)")
    parser.add_argument("--at", default="1,100,500,1000,2000", help="commits to report at")
    parser.add_argument("--window", type=int, default=20, help="appends each reported median covers")
    args = parser.parse_args(argv)
    at = sorted(int(a) for a in args.at.split(",") if int(a) <= args.commits)
    work = Path(tempfile.mkdtemp(prefix="bench-iceberg-commits-"))
    out: dict[str, Any] = {"commits": args.commits, "rows": args.rows, "window": args.window,
                           "load_average": os.getloadavg(), "cpus": os.cpu_count()}
    with Progress(console=Console(stderr=True)) as progress:
        for every in (int(e) for e in args.every.split(",")):
            out[f"every_{every}"] = measure(every, args.commits, args.rows, at, args.window, work, progress)
    out["load_average_after"] = os.getloadavg()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
