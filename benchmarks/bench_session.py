"""Spark session start with and without Spark's jars (``make jars``) on the classpath.

    .venv/bin/python benchmarks/bench_session.py               # 3 rounds of each, alternating
    .venv/bin/python benchmarks/bench_session.py --rounds 5 --json out.json

Each start runs in a fresh process (a new JVM): ``build_session`` for the small tier, then one job
(``spark.range(1000).count()``) so the classpath is really used. Prints the median and fastest seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.config import ConfigLoader  # noqa: E402
from pipeline.jars import installed_jars, load_manifest  # noqa: E402
from pipeline.spark import build_session  # noqa: E402


def child(with_jars: bool) -> None:
    """Start one session and print the seconds it took, with its first job."""
    config = ConfigLoader().load("small", env={})
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        spark, _ = build_session(
            config, app_name="bench-session", local_dir=Path(tmp), jars=None if with_jars else []
        )
        spark.range(1000).count()
        elapsed = time.perf_counter() - start
        spark.stop()
    print(elapsed)


def main() -> None:
    """Run the rounds and print the figures as JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--child", choices=["with", "without"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child == "with")
        return
    if len(installed_jars()) < len(load_manifest()):
        sys.exit("Spark's jars are not all installed: run `make jars` first")
    times: dict[str, list[float]] = {"without": [], "with": []}
    for _ in range(args.rounds):
        for mode in times:
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode], capture_output=True, text=True, check=True
            ).stdout
            times[mode].append(float(out.strip().splitlines()[-1]))
    result = {
        "rounds": args.rounds,
        "jars": len(installed_jars()),
        "start_s_without_jars": round(statistics.median(times["without"]), 2),
        "start_s_with_jars": round(statistics.median(times["with"]), 2),
        # the fastest start is the least disturbed by other load on a shared machine
        "fastest_s_without_jars": round(min(times["without"]), 2),
        "fastest_s_with_jars": round(min(times["with"]), 2),
        "all_s": {k: [round(t, 2) for t in v] for k, v in times.items()},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
