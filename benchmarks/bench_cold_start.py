"""Cold start of ``coattail run``: from launching it to its first micro-batch with records, by phase.

    .venv/bin/python benchmarks/bench_cold_start.py           # 3 rounds, the demo tape's first 5k events
    .venv/bin/python benchmarks/bench_cold_start.py --tape T --events 2000 --rounds 5 --json out.json
    .venv/bin/python benchmarks/bench_cold_start.py --imports --rounds 10   # one Python process's imports
    .venv/bin/python benchmarks/bench_cold_start.py --baseline main --events 3000 --speed 10x
    .venv/bin/python benchmarks/bench_cold_start.py --session --rounds 4   # the driver JVM alone
    .venv/bin/python benchmarks/bench_cold_start.py --warm-driver --events 0 --rounds 3  # attach or not
    .venv/bin/python benchmarks/bench_cold_start.py --baseline s8 --warm-driver --events 0  # both attach

Each round runs ``coattail run`` twice in fresh processes, alternating: ``installed`` (as a user runs it:
Spark's Python processes import the installed pyspark, ``pipeline.spark_home``) and ``zipped``
(``SPARK_HOME`` set to the pyspark installation, so they import its zipped copy, as before); with
``--baseline REV``, this working tree (``candidate``) and ``REV`` in its own checkout and venv
(``coattail.bench.checkout``; bring its stack up first, ``coattail up`` in the checkout, for a warm
machine on both sides). Per run:
``cold_start_s`` (launch to the first batch with records routed, from the run's ``metrics/batches``), the
run's own phases (``stack_s``, ``pipeline_start_s``, ``first_batch_s`` in ``run.json``), and the first
trigger against the median of the later ones (``routed - started`` per batch). Prints medians and the
ratio installed / zipped per figure. ``--imports`` times only what each of Spark's Python processes
imports at its start (the worker, the data source planner, the streaming source's runner), with the
``PYTHONPATH`` Spark gives it from either home, in fresh interpreters, alternating. ``--session`` times
a local session's start and first job in fresh processes, with and without the driver JVM's class
archive (``pipeline.jvm_archive``), as wall time and as the JVM's CPU time (which a loaded machine
disturbs less). ``--warm-driver`` alternates ``own`` (the run starts its own driver) and ``warm`` (it
attaches to the one ``coattail up --warm-driver`` keeps, started before the round and not counted; a
run that did not attach stops the benchmark); with ``--baseline`` too, both sides attach, each to the
warm driver of its own checkout. ``--events 0`` replays the whole tape. Runs use the stack
under the checkout's state dir (``coattail up`` first for a warm
machine; else each starts its own).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import polars as pl  # noqa: E402

from coattail.bench.tapes import head  # noqa: E402
from coattail.commands.run import DEMO_DURATION, DEMO_SCALE, DEMO_SEED, _demo_tape  # noqa: E402
from pipeline.spark_home import installed_pyspark  # noqa: E402

VARIANTS = ("zipped", "installed")
SIDES = ("baseline", "candidate")
WARM_SIDES = ("own", "warm")
SESSION_VARIANTS = ("no-archive", "archive")
SESSION_PROBE = """
import json, os, sys, time
import pipeline.spark as ps
from pipeline.config import ConfigLoader
if sys.argv[1] == "no-archive":
    ps.driver_java_options = lambda archive, dump=False: None
def cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
config = ConfigLoader().load("small")
t0 = time.perf_counter()
spark, _ = ps.build_session(config, app_name="bench-cold-start")
pid = spark.sparkContext._gateway.proc.pid
t1, c1 = time.perf_counter(), cpu(pid)
spark.range(1_000).selectExpr("id % 7 AS k").groupBy("k").count().toArrow()
t2, c2 = time.perf_counter(), cpu(pid)
print(json.dumps({"session_s": t1 - t0, "session_jvm_cpu_s": c1, "first_job_s": t2 - t1,
                  "first_job_jvm_cpu_s": c2 - c1}))
spark.stop()
"""
WORKER_IMPORTS = (
    "import pyspark.worker, pyspark.sql.worker.create_data_source, "
    "pyspark.sql.streaming.python_streaming_source_runner"
)


def imports_s(variant: str) -> float:
    """Seconds a fresh interpreter takes to import what Spark's Python processes import at start."""
    lib = installed_pyspark() / "python" / "lib"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if variant == "zipped":
        env["PYTHONPATH"] = os.pathsep.join(str(z) for z in sorted(lib.glob("*.zip")))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", WORKER_IMPORTS], env=env, check=True)
    return time.perf_counter() - start


def session_figures(variant: str) -> dict[str, float]:
    """One fresh process's session start and first job (``SESSION_PROBE``), with or without the archive."""
    done = subprocess.run([sys.executable, "-c", SESSION_PROBE, variant], cwd=REPO, capture_output=True,
                          text=True, check=True)  # fmt: skip
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _checkout_env() -> dict[str, str]:
    """This environment for a checkout's command, less what would point it at another checkout's Spark
    or state dir (and stack, and warm driver)."""
    return {k: v for k, v in os.environ.items() if k not in ("SPARK_HOME", "COATTAIL_STATE_DIR")}


def one_run(
    tape: Path, speed: str, runs: Path, variant: str, checkout: Path = REPO, wants_warm: bool = False
) -> dict[str, Any]:
    """Launch one ``coattail run`` (of ``checkout``) and read its phases back; it must have attached to
    a warm driver if and only if ``wants_warm``."""
    env = _checkout_env()
    if variant == "zipped":
        env["SPARK_HOME"] = str(installed_pyspark())
    runs.mkdir(parents=True, exist_ok=True)
    launched_us = time.time_ns() // 1_000
    done = subprocess.run(
        [str(checkout / ".venv" / "bin" / "coattail"), "run", str(tape), "--speed", speed,
         "--runs", str(runs)],
        cwd=checkout, env=env, capture_output=True, text=True,
    )  # fmt: skip
    run_dir = sorted(p for p in runs.iterdir() if (p / "run.json").is_file())[-1]
    if done.returncode not in (0, 1):
        sys.exit(f"coattail run failed ({variant}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    record = json.loads((run_dir / "run.json").read_text())
    timings = record["timings"]
    attached = bool(record.get("warm_driver", {}).get("attached"))
    if attached != wants_warm:
        sys.exit(f"{run_dir}: the run {'did' if attached else 'did not'} attach to a warm driver ({variant})")
    batches = pl.read_parquet(run_dir / "metrics" / "batches.parquet").filter(pl.col("records_in") > 0)
    triggers_ms = ((batches["routed_us"] - batches["started_us"]) / 1_000).to_list()
    return {
        "run": str(run_dir),
        "cold_start_s": (batches["routed_us"][0] - launched_us) / 1e6,
        "stack_s": timings.get("stack_s"),
        "pipeline_start_s": timings.get("pipeline_start_s"),
        "first_batch_s": timings.get("first_batch_s"),
        "first_trigger_ms": triggers_ms[0],
        "later_trigger_ms_median": statistics.median(triggers_ms[1:]) if len(triggers_ms) > 1 else None,
    }


def warm_driver(wanted: bool, checkout: Path = REPO) -> None:
    """Start the checkout's warm driver (``coattail up --warm-driver``, a no-op when it runs) or stop it."""
    if wanted:
        subprocess.run([str(checkout / ".venv" / "bin" / "coattail"), "up", "--warm-driver"], cwd=checkout,
                       env=_checkout_env(), capture_output=True, check=True)  # fmt: skip
    else:
        from coattail.run.warm_driver import stop

        stop(checkout / ".coattail")


def main() -> None:
    """Run the rounds and print the figures as JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tape", type=Path, help="tape to cut (default: the demo's whale day)")
    ap.add_argument("--events", type=int, default=5_000, help="replay the tape's first N events")
    ap.add_argument("--speed", default="60x")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=Path, default=REPO / "runs" / "bench-cold-start")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--imports", action="store_true", help="time the Python processes' imports only")
    ap.add_argument("--session", action="store_true", help="time the driver JVM's start only")
    ap.add_argument("--baseline", help="compare with this git revision instead of the zipped pyspark")
    ap.add_argument("--warm-driver", action="store_true", help="compare runs with and without a warm driver")
    args = ap.parse_args()
    args.runs = args.runs.resolve()  # a baseline runs in its own checkout
    if args.session:
        samples: dict[str, list[dict[str, float]]] = {v: [] for v in SESSION_VARIANTS}
        for i in range(args.rounds):
            for variant in SESSION_VARIANTS if i % 2 == 0 else SESSION_VARIANTS[::-1]:
                samples[variant].append(session_figures(variant))
                print(variant, json.dumps(samples[variant][-1]), file=sys.stderr)
        middle = {v: {f: round(statistics.median(r[f] for r in rs), 3) for f in rs[0]}
                  for v, rs in samples.items()}
        ratios = {f: round(middle["archive"][f] / middle["no-archive"][f], 3) for f in middle["archive"]}
        print(json.dumps({"rounds": args.rounds, "load_1_5_15": os.getloadavg(), "median": middle,
                          "ratio_archive_over_none": ratios}, indent=2))  # fmt: skip
        return
    if args.imports:
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for i in range(args.rounds):
            for variant in VARIANTS if i % 2 == 0 else VARIANTS[::-1]:
                times[variant].append(imports_s(variant))
        typical = {v: round(statistics.median(t), 3) for v, t in times.items()}
        report = {"rounds": args.rounds, "load_1_5_15": os.getloadavg(), "median_s": typical,
                  "ratio_installed_over_zipped": round(typical["installed"] / typical["zipped"], 3),
                  "all_s": {v: [round(t, 3) for t in ts] for v, ts in times.items()}}  # fmt: skip
        print(json.dumps(report, indent=2))
        return
    source = args.tape or _demo_tape(
        REPO / "runs" / "tapes" / f"whale-day-{DEMO_DURATION}-x{DEMO_SCALE:g}-s{DEMO_SEED}",
        DEMO_DURATION, DEMO_SCALE, DEMO_SEED,
    )  # fmt: skip
    cut = args.runs / "tapes" / f"{source.name}-first-{args.events}"
    tape = head(source, args.events, cut) if args.events else source
    checkouts = {"zipped": REPO, "installed": REPO, "candidate": REPO, "own": REPO, "warm": REPO}
    if args.baseline:
        from coattail.bench.checkout import revision

        def note(message: str) -> None:
            print(message, file=sys.stderr)

        checkouts["baseline"] = revision(args.baseline, REPO / ".coattail", note).path
    sides = SIDES if args.baseline else WARM_SIDES if args.warm_driver else VARIANTS
    new, old = sides[1], sides[0]
    rows: dict[str, list[dict[str, Any]]] = {v: [] for v in sides}
    for i in range(args.rounds):
        # the side that goes first alternates, so a machine slowing down favours neither
        for variant in sides if i % 2 == 0 else sides[::-1]:
            # with a baseline, both sides attach to their own checkout's warm driver
            wants_warm = args.warm_driver and variant in ("warm", *SIDES)
            if args.warm_driver:
                warm_driver(wants_warm, checkouts[variant])
            rows[variant].append(
                one_run(tape, args.speed, args.runs / variant, variant, checkouts[variant], wants_warm)
            )
            print(variant, json.dumps(rows[variant][-1]), file=sys.stderr)
    figures = [k for k in rows[new][0] if k != "run"]
    medians = {
        v: {f: statistics.median(r[f] for r in rows[v] if r[f] is not None) for f in figures}
        for v in sides
    }
    result = {
        "tape": str(tape),
        "speed": args.speed,
        "rounds": args.rounds,
        "load_1_5_15": os.getloadavg(),
        "median": medians,
        f"ratio_{new}_over_{old}": {
            f: round(medians[new][f] / medians[old][f], 3) for f in figures if medians[old][f]
        },
        "runs": rows,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
