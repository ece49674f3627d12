"""Benchmark: the driver's own work per small micro-batch (a paced trigger's fixed cost that is ours).

    .venv/bin/python benchmarks/bench_small_trigger.py --tape runs/tapes/T --rows 40 --batches 300

The tape's first ``--rows x --batches`` events in exchange-time order (what a paced replay sends) are
put on the wire, parsed (``pipeline.parse``) and cut into batches of ``--rows``; each batch then goes
through what driver mode's foreachBatch runs for it, stage by stage and in one process (no Spark, no
emulator):

- ``engine``: ``Engine.process`` (sequencer, detectors, the state document);
- ``route``: ``AlertRouter.route`` with the spool of a real run (no alert or table sink: the background
  commits are the sinks' own cost, not the trigger's);
- ``commit``: ``Engine.commit`` (the state saved under the checkpoint).

Prints the median and p90 of the CPU ms (this thread's: on a shared, loaded machine wall time mostly
measures the neighbours) of each stage and of their sum, over the batches after ``--warm`` of them, as
one JSON line. A script, not a test: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from core.events import to_wire
from core.tape import Tape
from pipeline.config import ConfigLoader
from pipeline.detectors.registry import ModuleRegistry
from pipeline.engine import Engine
from pipeline.parse import parse_batch
from pipeline.router import AlertRouter
from pipeline.testkit import raw_table


def parsed_batches(tape: Path, rows: int, batches: int) -> list[pa.RecordBatch]:
    """The tape's first ``rows * batches`` events by exchange time, parsed, in batches of ``rows``."""
    opened = Tape.open(tape)
    events: list[tuple[int, str, dict[str, Any]]] = []
    for kind in opened.manifest.kinds:
        table = opened.read(kind)
        events.extend((row["ts_event"], kind, row) for row in table.to_pylist())
    events.sort(key=lambda e: e[0])
    wire = [to_wire(kind, row, ts_sent=ts) for ts, kind, row in events[: rows * batches]]  # type: ignore[arg-type]
    parsed = parse_batch(raw_table(wire).combine_chunks().to_batches()[0])
    return [parsed.slice(i, rows) for i in range(0, parsed.num_rows, rows)]


def measure(tape: Path, tier: str, rows: int, batches: int, warm: int) -> dict[str, Any]:
    """Per-stage medians and p90s (ms) of the driver's work over ``batches`` batches of ``rows``."""
    config = ConfigLoader().load(tier, env={})
    detectors = ModuleRegistry().build(config)
    parts = parsed_batches(tape, rows, batches)
    spent: dict[str, list[float]] = {"engine": [], "route": [], "commit": []}
    with tempfile.TemporaryDirectory(prefix="bench-trigger-") as tmp:
        engine = Engine(config, detectors, state_dir=Path(tmp) / "state")
        router = AlertRouter([], [], spool_dir=Path(tmp) / "spool", commit_interval_s=2.0)
        router.open(())
        try:
            for batch_id, part in enumerate(parts):
                stamps = [time.thread_time()]
                result = engine.process(part, batch_id)
                stamps.append(time.thread_time())
                router.route(result, "bench")
                stamps.append(time.thread_time())
                engine.commit(batch_id)
                stamps.append(time.thread_time())
                if batch_id >= warm:
                    for name, start, end in zip(spent, stamps, stamps[1:], strict=False):
                        spent[name].append((end - start) * 1e3)
        finally:
            router.close()
    total = np.sum([spent[name] for name in spent], axis=0)
    out: dict[str, Any] = {"tape": str(tape), "tier": tier, "rows": rows, "batches": len(total)}
    for name, values in (*spent.items(), ("total", total)):
        out[f"{name}_p50_ms"] = round(float(np.median(values)), 2)
        out[f"{name}_p90_ms"] = round(float(np.percentile(values, 90)), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tape", type=Path, required=True)
    parser.add_argument("--tier", default="small")
    parser.add_argument("--rows", type=int, default=40, help="events per micro-batch")
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--warm", type=int, default=20, help="first batches left out of the figures")
    args = parser.parse_args()
    print(json.dumps(measure(args.tape, args.tier, args.rows, args.batches, args.warm)))


if __name__ == "__main__":
    main()
