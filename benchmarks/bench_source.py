"""Driver bytes per trigger of the Kinesis source: what the driver holds while it plans a micro-batch
(``latestOffset`` and ``partitions``), what it ships to the executors in the input partitions, and what
it fetches from Kinesis, for several batch sizes on the same pre-loaded stream.

    .venv/bin/python benchmarks/bench_source.py --events 400000 --batch 10000 --batch 100000 --batch 400000

moto runs in its own process on 127.0.0.1 (as ``bench_pipeline.py`` starts it); the stream (2 shards)
is loaded with KPL-aggregated trades, then each batch size drains it from the start with a fresh reader,
as Spark's driver calls it (``latestOffset``, ``partitions``, ``getCache``, ``commit``). Per trigger:

- ``held_peak``: the peak of the Python heap above its level before the trigger (``tracemalloc``), while
  ``latestOffset`` and ``partitions`` run: the records the driver holds, hand-over batches included;
- ``shipped``: the input partitions pickled (Spark's cloudpickle pickles these module-level classes
  the same way);
- ``fetched``: the record bytes of the driver's GetRecords answers.

Every batch's partitions are then read (in this process, untimed) and their rows counted against the
events put. Reported per batch size: medians and maxima over the triggers. Run the same script over
another revision of ``pipeline/`` (a checkout of it, the script copied in) to compare before and after.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

from rich.progress import Progress

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_pipeline import put_aggregated, start_stack  # noqa: E402
from core.events import partition_key, to_wire  # noqa: E402
from pipeline.config import Config  # noqa: E402
from pipeline.source.kinesis_reader import KinesisStreamReader  # noqa: E402
from pipeline.testkit import T0, trade  # noqa: E402


def load(cfg: Config, events: int) -> None:
    """``events`` trades of 20 symbols, KPL-aggregated, put on the stream."""
    symbols = [f"S{i:02d}USDT" for i in range(20)]
    pairs = []
    for i in range(events):
        sym = symbols[i % len(symbols)]
        kind, row = trade(i // len(symbols), 100.0 + (i % 7), 1.0, T0 + i * 100, symbol=sym)
        pairs.append((partition_key("binance", sym), to_wire(kind, row, ts_sent=T0)))
    for k in range(0, len(pairs), 50_000):
        put_aggregated(cfg, pairs[k:k + 50_000])


def drain(cfg: Config, batch: int, driver_read_max: int, events: int, progress: Progress) -> dict[str, Any]:
    """Every trigger's driver bytes while a fresh reader drains the stream in batches of ``batch``."""
    reader = KinesisStreamReader({
        "stream": cfg.kinesis.stream, "endpoint": cfg.runtime.aws_endpoint or "",
        "max_records": str(batch), "driver_read_max_records": str(driver_read_max),
    })
    fetched = [0]

    def count(parsed: dict[str, Any], **_: Any) -> None:
        fetched[0] += sum(len(r["Data"]) for r in parsed.get("Records", []))

    reader.kinesis.meta.events.register("after-call.kinesis.GetRecords", count)
    triggers: list[dict[str, int]] = []
    rows = 0
    task = progress.add_task(f"batch {batch:,}", total=events)
    start = reader.initialOffset()
    while rows < events:
        fetched[0] = 0
        tracemalloc.start()
        end = reader.latestOffset()
        parts = reader.partitions(start, end)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        shipped = sum(len(pickle.dumps(p)) for p in parts)
        handed = reader.getCache(start, end)
        batches = list(handed) if handed is not None else [b for p in parts for b in reader.read(p)]
        n = sum(b.num_rows for b in batches)
        if n == 0:
            raise RuntimeError(f"a trigger read nothing after {rows} of {events} events")
        rows += n
        progress.update(task, advance=n)
        triggers.append({"rows": n, "held_peak": peak, "shipped": shipped, "fetched": fetched[0],
                         "handed_over": int(handed is not None)})
        reader.commit(end)
        start = end
    if rows != events:
        raise RuntimeError(f"read {rows} rows, {events} events were put")
    full = [t for t in triggers if t["rows"] >= batch] or triggers

    def stat(key: str) -> dict[str, int]:
        values = [t[key] for t in full]
        return {"median": int(statistics.median(values)), "max": max(values)}

    return {
        "max_records_per_batch": batch, "driver_read_max_records": driver_read_max,
        "triggers": len(triggers), "full_triggers": len(full),
        "rows_per_trigger": stat("rows"), "held_peak_bytes": stat("held_peak"),
        "shipped_bytes": stat("shipped"), "fetched_bytes": stat("fetched"),
        "handed_over": sum(t["handed_over"] for t in triggers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--batch", type=int, action="append", help="max records per batch (repeatable)")
    parser.add_argument("--driver-read-max", type=int, default=20_000,
                        help="spark.driver_read_max_records (the hand-over bound; default the tiers')")
    args = parser.parse_args()
    import pipeline

    tmp = Path(tempfile.mkdtemp(prefix="bench-source-"))
    server, cfg = start_stack(tmp)
    try:
        load(cfg, args.events)
        with Progress(transient=True) as progress:
            results = [drain(cfg, b, args.driver_read_max, args.events, progress)
                       for b in args.batch or [10_000, 100_000, 400_000]]
    finally:
        server.stop()
    json.dump({"benchmark": "source", "pipeline": str(Path(pipeline.__file__).parent), "events": args.events,
               "results": results}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
