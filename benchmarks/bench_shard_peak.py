"""Does a tier's Kinesis shard count hold a tape's peak? Each event's wire record (as the replay sends it)
is routed like Kinesis routes it (MD5 of the ``exchange:symbol`` partition key into the shards' equal
hash ranges), and the busiest second of each shard is compared with AWS's per-shard write quota
(1 MiB/s; 1,000 records/s, which KPL aggregation turns into a non-issue, so events/s without
aggregation are shown for reference). The hottest partition key is reported too: one key always lands
on one shard, so a key above the quota cannot be helped by more shards.

    .venv/bin/python benchmarks/bench_shard_peak.py TAPE [TAPE ...] [--tier small] [--shards N] [--speed 1]
        [--json out.json]

``--speed`` scales exchange time as the replay does (10 = ten times faster than recorded).
Whether nothing is lost when the shards do not hold the peak is the ``aws-quotas`` run of
``coattail faults`` (the replay retries refused records until the stream takes them).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.tape import Tape  # noqa: E402
from infra.faultproxy.limits import ShardRange, hash_key, shard_for  # noqa: E402
from infra.faultproxy.spec import KinesisLimits  # noqa: E402
from pipeline.config import ConfigLoader  # noqa: E402
from replay.merge import merge_tapes  # noqa: E402
from replay.wire import encode_array, partition_keys  # noqa: E402

US = 1_000_000


def even_ranges(shards: int) -> list[ShardRange]:
    """The hash key ranges ``CreateStream`` gives ``shards`` shards (equal slices of 0..2^128-1)."""
    top = 1 << 128
    return [
        ShardRange(f"shardId-{i:012d}", i * top // shards, (i + 1) * top // shards - 1) for i in range(shards)
    ]


def shard_peaks(tapes: list[Path], shards: int, speed: float) -> dict[str, Any]:
    """Per-second bytes and events per shard and per key; their peaks against the write quota."""
    limits = KinesisLimits()
    ranges = even_ranges(shards)
    per_shard: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    per_key: dict[tuple[int, str], int] = defaultdict(int)
    route: dict[str, str] = {}
    events = 0
    for chunk in merge_tapes([Tape.open(t) for t in tapes]):
        keys = partition_keys(chunk).to_pylist()
        sizes = pc.binary_length(encode_array(chunk, ts_sent=0)).to_numpy()
        seconds = (chunk.column("ts_event").to_numpy() // int(US * speed)).tolist()  # wall seconds
        for second, key, size in zip(seconds, keys, sizes.tolist(), strict=True):
            shard = route.get(key) or route.setdefault(key, shard_for(ranges, hash_key(key)))
            cell = per_shard[(second, shard)]
            cell[0] += size + len(key)
            cell[1] += 1
            per_key[(second, key)] += size + len(key)
        events += chunk.num_rows
    by_shard: dict[str, dict[str, Any]] = {}
    for r in ranges:
        cells = np.array([v for (s, sh), v in per_shard.items() if sh == r.shard_id] or [[0, 0]])
        by_shard[r.shard_id] = {
            "keys": sorted(k for k, sh in route.items() if sh == r.shard_id),
            "peak_bytes_per_s": int(cells[:, 0].max()),
            "peak_events_per_s": int(cells[:, 1].max()),
            "seconds_over_byte_quota": int((cells[:, 0] > limits.write_bytes_per_s).sum()),
        }
    hottest = max(per_key.items(), key=lambda kv: kv[1], default=((0, "-"), 0))
    peak = max(v["peak_bytes_per_s"] for v in by_shard.values())
    return {
        "tapes": [str(t) for t in tapes],
        "events": events,
        "speed": speed,
        "shards": shards,
        "quota_bytes_per_s": limits.write_bytes_per_s,
        "peak_shard_bytes_per_s": peak,
        "holds_peak": peak <= limits.write_bytes_per_s,
        "hottest_key": {"key": hottest[0][1], "peak_bytes_per_s": hottest[1]},
        "by_shard": by_shard,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("tapes", nargs="+", type=Path)
    parser.add_argument("--tier", default="small")
    parser.add_argument("--shards", type=int, default=None, help="default: the tier's kinesis.shards")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    shards = args.shards or ConfigLoader().load(args.tier).kinesis.shards
    result = shard_peaks(args.tapes, shards, args.speed)
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
