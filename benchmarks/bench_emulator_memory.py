"""What the emulator (the stack's moto) holds per record: RSS per Kinesis record and per event, projected to
a whole tape.

    .venv/bin/python benchmarks/bench_emulator_memory.py --tape runs/tapes/market-day-x0.6 --events 500000

moto keeps every record of a stream in memory for the life of the process (real Kinesis keeps them 24 h
and more, on disk). This replays the tape's first ``--events`` events (``coattail.bench.tapes.head``) at
max speed into a fresh moto with the tier's stream, as ``coattail run`` does (``KinesisTarget``: KPL
aggregates), sampling moto's RSS at each progress report; then reads the stream back once from its start
(as the pipeline does) to count the records and their base64 payload. Reports moto's RSS growth per
Kinesis record and per event (the final growth, and the slope fitted over the samples), the payload's
share of it, the RSS after the full read, and the growth projected to the whole tape's event count.

The projection is linear: right for a moto that keeps record data in its heap (its growth is the data),
an overstatement for the stack's moto, which keeps it in a file (``infra.moto.server``): what grows
there is its allocator's working set, about 100 MB and flat beyond, so measure the whole tape instead.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from rich.progress import Progress as Bar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from coattail.bench.tapes import head  # noqa: E402
from core.tape import Tape  # noqa: E402
from infra import emulator  # noqa: E402
from infra.provision import StackSpec, provision  # noqa: E402
from pipeline.aws import client  # noqa: E402
from pipeline.config import ConfigLoader, RuntimeSettings  # noqa: E402
from replay.engine import Progress, Replay  # noqa: E402
from replay.targets.kinesis import KinesisTarget  # noqa: E402

MIB = 2**20


def measure(tape: Path, events: int, tier: str, work: Path) -> dict[str, Any]:
    """Replay ``tape``'s first ``events`` into a fresh moto and measure what it holds."""
    total = sum(Tape.open(tape).manifest.rows.values())
    sliced = head(tape, min(events, total), work / "slice")
    endpoint = emulator.start("moto", work / "moto").endpoint
    server = emulator.server_process("moto", work / "moto")
    try:
        config = ConfigLoader().load(tier)
        runtime = RuntimeSettings(aws_endpoint=endpoint, state_dir=work)
        config = config.model_copy(update={"runtime": runtime})
        provision(StackSpec.from_config(config), runtime)
        moto = psutil.Process(server.read_pid())
        base_rss = moto.memory_info().rss
        samples: list[tuple[int, int]] = [(0, base_rss)]
        target = KinesisTarget(runtime, config.kinesis.stream)
        sent = sum(Tape.open(sliced).manifest.rows.values())
        with Bar() as bar:
            task = bar.add_task("replay into moto", total=sent)

            def on_progress(p: Progress) -> None:
                samples.append((p.sent, moto.memory_info().rss))
                bar.update(task, completed=p.sent)

            t = time.monotonic()
            summary = Replay([sliced], target, speed=None, on_progress=on_progress).run()
            replay_s = time.monotonic() - t
        time.sleep(1.0)  # the server's last requests settle
        loaded_rss = moto.memory_info().rss
        samples.append((summary.sent, loaded_rss))
        records, payload = _read_back(config.kinesis.stream, runtime)
        after_read_rss = moto.memory_info().rss
    finally:
        server.stop()
    grown = loaded_rss - base_rss
    sent_n = np.array([s for s, _ in samples], dtype=float)
    rss_n = np.array([r for _, r in samples], dtype=float)
    slope = float(np.polyfit(sent_n, rss_n, 1)[0]) if len(samples) > 2 else None
    per_event = grown / summary.sent
    return {
        "benchmark": "emulator_memory",
        "tape": str(tape),
        "tier": tier,
        "events": summary.sent,
        "kinesis_records": records,
        "kinesis_records_put": target.kinesis_records,
        "events_per_record": round(summary.sent / records, 1),
        "payload_base64_mib": round(payload / MIB, 1),
        "replay_s": round(replay_s, 1),
        "moto_rss_mib": {
            "provisioned": round(base_rss / MIB, 1),
            "loaded": round(loaded_rss / MIB, 1),
            "after_full_read": round(after_read_rss / MIB, 1),
        },
        "rss_growth_bytes_per_record": round(grown / records),
        "rss_growth_bytes_per_event": round(per_event, 1),
        "rss_slope_bytes_per_event": None if slope is None else round(slope, 1),
        "payload_base64_bytes_per_event": round(payload / summary.sent, 1),
        "rss_growth_over_payload": round(grown / payload, 2),
        "projected": {
            "tape_events": total,
            "moto_rss_growth_gib": round(per_event * total / 2**30, 2),
        },
    }


def _read_back(stream: str, runtime: RuntimeSettings) -> tuple[int, int]:
    """(records, bytes of their base64 payload as moto keeps it) over every shard, from the start."""
    kinesis: Any = client("kinesis", runtime)
    records = payload = 0
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        cursor = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while cursor:
            page = kinesis.get_records(ShardIterator=cursor, Limit=1_000)
            records += len(page["Records"])
            payload += sum(len(base64.b64encode(r["Data"])) for r in page["Records"])
            if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
                break
            cursor = page.get("NextShardIterator")
    return records, payload


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tape", type=Path, required=True)
    parser.add_argument(
        "--events", type=int, default=500_000, help="the tape's first N events (default 500k)"
    )
    parser.add_argument("--tier", default="small")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="coattail-emulator-memory-") as tmp:
        result = measure(args.tape, args.events, args.tier, Path(tmp))
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
