"""Benchmark: the reprocessor over a full synthetic market day with the whole small tier.

    .venv/bin/python benchmarks/bench_reprocessor.py --tape /tmp/day [--generate] [--scale 0.74]
    .venv/bin/python benchmarks/bench_reprocessor.py --tape /tmp/day --engine-batches 200000
    ... --modules MOD-001,MOD-005 --set settings.MOD-005.threshold_bps=10  # config overrides
    .venv/bin/python benchmarks/bench_reprocessor.py --tape /tmp/mday --generate --scenario medium-day \
        --exchanges binance,coinbase --tiers small,medium --rounds 2
    .venv/bin/python benchmarks/bench_reprocessor.py --tape /tmp/lday --generate --scenario large-day \
        --exchanges binance,coinbase --tiers small,large --rounds 2 --scale 0.25

``--generate`` writes the tape first with the simulator (whale-day, BTCUSDT/ETHUSDT/SOLUSDT on binance,
one day, seed 7; scale 0.74 gives about 10M events). The tape is loaded into a fresh lite catalog
(timed separately), then ``reprocess`` runs MOD-001..MOD-004 over the day. Prints one JSON line with
wall times and events/s, and ``reprocess_cpu_s``: the CPU seconds (user + system) the reprocess cost
this process, Spark's JVM and its Python workers together, which a loaded machine inflates far less
than the wall; ``reprocess_peak_rss_gib``, the largest resident memory of those processes together.
A script, not a test: nothing here asserts on time.

``--tiers small,medium`` reprocesses the loaded day per tier (that tier's modules, one Spark session,
one load, tiers taken in turn, ``--rounds`` times, the best round of each kept, so the first run's
warm-up counts for none) and adds each tier's events/s relative to the first one's: what a tier's
extra modules cost, measured in one run.

``--engine-batches N`` instead feeds the tape in tape order through the streaming engine
(``pipeline.engine.Engine``: sequencer + all four modules, state carried between micro-batches of N
events, no Kinesis and no sinks): the detector side of the streaming throughput. The end-to-end
streaming figure (Kinesis source, sinks, latency) is ``benchmarks/bench_e2e.py``'s.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import psutil

from core.tape import Tape
from pipeline.config import ConfigLoader, RuntimeSettings
from pipeline.jobs.loader import load_tape, read_manifest
from pipeline.jobs.reprocessor import reprocess
from pipeline.sinks.iceberg import IcebergSink
from pipeline.spark import build_session

DAY_US = 86_400_000_000


def generate(
    tape: Path, scale: float, scenario: str = "whale-day", exchanges: tuple[str, ...] = ("binance",)
) -> None:
    """The benchmark day, with the harness's simulator (imported here only: pipeline never does)."""
    from core.timefmt import parse_duration, parse_time
    from sim.generator import GenerateSpec
    from sim.generator import generate as run
    from sim.scenario import load_scenario

    spec = GenerateSpec(
        scenario=load_scenario(scenario),
        symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"),
        exchanges=exchanges,
        start_us=parse_time("2026-01-01T00:00Z", "--start"),
        duration_us=parse_duration("1d"),
        seed=7,
        scale=scale,
    )
    run(spec, ConfigLoader().load("small"), tape, overwrite=True, origin=["benchmarks/bench_reprocessor.py"])


def tree_cpu_s() -> dict[int, float]:
    """CPU seconds (user + system) of this process and every live descendant (JVM, Python workers)."""
    me = psutil.Process()
    out: dict[int, float] = {}
    for proc in [me, *me.children(recursive=True)]:
        with suppress(psutil.Error):
            times = proc.cpu_times()
            out[proc.pid] = times.user + times.system
    return out


class PeakRss:
    """The largest resident memory of this process tree (summed over its processes), sampled every
    half second on a thread while the block runs."""

    def __init__(self) -> None:
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._done.wait(0.5):
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                with suppress(psutil.Error):
                    total += proc.memory_info().rss
            self.peak = max(self.peak, total)


def cpu_since(before: dict[int, float]) -> float:
    """CPU seconds the process tree spent since ``before`` (a process gone since is not counted)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in tree_cpu_s().items())


def engine_throughput(
    tape: Path, modules: list[str], batch: int, overrides: dict[str, str]
) -> dict[str, object]:
    """Micro-batches of ``batch`` tape events through the engine; time spent in ``Engine.process``."""
    from pipeline.detectors.registry import ModuleRegistry
    from pipeline.engine import Engine
    from pipeline.jobs.loader import parsed_events

    config = ConfigLoader().load("small", env={}, overrides={**overrides, "modules": modules})
    table = parsed_events(tape, config)
    engine = Engine(config, ModuleRegistry().build(config))
    spent, alerts = 0.0, 0
    for batch_id, offset in enumerate(range(0, table.num_rows, batch)):
        t0 = time.perf_counter()
        result = engine.process(table.slice(offset, batch), batch_id)
        engine.commit(batch_id)
        spent += time.perf_counter() - t0
        alerts += result.alerts.num_rows
    return {
        "events": table.num_rows,
        "batch": batch,
        "engine_s": round(spent, 1),
        "engine_events_per_s": round(table.num_rows / spent),
        "alerts": alerts,
        "modules": modules,
    }


def main() -> None:
    """Generate (optionally), load, reprocess; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tape", type=Path, required=True)
    parser.add_argument("--generate", action="store_true")
    parser.add_argument("--scale", type=float, default=0.74)
    parser.add_argument("--scenario", default="whale-day", help="preset of --generate")
    parser.add_argument("--exchanges", default="binance", help="of --generate, comma-separated")
    parser.add_argument("--modules", default="MOD-001,MOD-002,MOD-003,MOD-004")
    parser.add_argument("--tiers", default="", help="compare tiers' modules instead of --modules")
    parser.add_argument("--rounds", type=int, default=1, help="with --tiers: runs per tier, best kept")
    parser.add_argument("--engine-batches", type=int, default=0, metavar="N")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override, as coattail's --set (instruments: the tape's by default)")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    if args.generate:
        generate(args.tape, args.scale, args.scenario, tuple(args.exchanges.split(",")))
    # as `coattail run` does: the tape's instruments take part in the asset stage (MOD-005)
    listed = ConfigLoader().load("small", env={}).instruments.listed_names(Tape.open(args.tape).instruments())
    overrides.setdefault("instruments", "[" + ",".join(listed) + "]")
    if args.engine_batches:
        modules = args.modules.split(",")
        print(json.dumps(engine_throughput(args.tape, modules, args.engine_batches, overrides)))
        return
    manifest = read_manifest(args.tape)
    start = int(manifest["start_us"]) // DAY_US * DAY_US
    with tempfile.TemporaryDirectory(prefix="bench-reprocess-") as tmp:
        config = ConfigLoader().load("small", env={}, overrides=overrides)
        config = config.model_copy(update={"runtime": RuntimeSettings(state_dir=Path(tmp))})
        sink = IcebergSink(config)
        t0 = time.perf_counter()
        load_tape(args.tape, sink)
        load_s = time.perf_counter() - t0
        spark, _ = build_session(config, app_name="bench-reprocessor", local_dir=Path(tmp) / "spark")
        runs: dict[str, list[str]] = (
            {tier: list(ConfigLoader().load(tier, env={}).modules) for tier in args.tiers.split(",")}
            if args.tiers
            else {"modules": args.modules.split(",")}
        )
        figures: dict[str, dict[str, Any]] = {}
        eps: dict[str, float] = {}
        try:
            for _ in range(max(1, args.rounds)):
                for label, modules in runs.items():
                    t1, cpu0 = time.perf_counter(), tree_cpu_s()
                    with PeakRss() as rss:
                        result = reprocess(
                            spark,
                            config,
                            modules=modules,
                            start_us=start,
                            end_us=start + DAY_US,
                            name=f"bench_{label}",
                            sink=sink,
                        )
                    reprocess_s, reprocess_cpu_s = time.perf_counter() - t1, cpu_since(cpu0)
                    if result.events / reprocess_s <= eps.get(label, 0.0):
                        continue
                    eps[label] = result.events / reprocess_s
                    figures[label] = {
                        "events": result.events,
                        "reprocess_s": round(reprocess_s, 1),
                        "reprocess_cpu_s": round(reprocess_cpu_s, 1),
                        "reprocess_peak_rss_gib": round(rss.peak / 2**30, 2),
                        "reprocess_events_per_s": round(eps[label]),
                        "outputs": {name: t.num_rows for name, t in result.tables.items()},
                        "key_cpu_s": result.key_cpu_s,
                        "modules": ",".join(modules),
                    }
        finally:
            spark.stop()
    base = next(iter(eps.values()))
    for label, f in figures.items():
        f["relative_to_first"] = round(eps[label] / base, 3)
    shown = figures if args.tiers else next(iter(figures.values()))
    print(json.dumps({"load_s": round(load_s, 1), **shown}))


if __name__ == "__main__":
    main()
