"""Benchmark: saving and restoring the engine state (``EngineState.to_bytes`` / ``from_bytes``).

    .venv/bin/python benchmarks/bench_state.py [--hours 2] [--scale 1.0] [--keys 1000]

Driver mode saves the whole state after every micro-batch, so this sits on the latency path. The state
is a realistic one: the simulator's whale-day (BTCUSDT/ETHUSDT/SOLUSDT on binance and coinbase, 6 keys)
fed through the engine with all four modules in micro-batches of 5,000 events; ``--keys`` copies its
per-key states to that many keys (state-store mode stores one key per blob, driver mode all of them).
Prints one JSON line: blob size and the median CPU time of each call (process time: on a shared machine
wall time would mostly measure the other tenants). A script, not a test: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.config import ConfigLoader
from pipeline.detectors.registry import ModuleRegistry
from pipeline.engine import Engine, EngineState
from pipeline.parse import parse_batch
from pipeline.source.tape import TapeRows

MODULES = ["MOD-001", "MOD-002", "MOD-003", "MOD-004"]
BATCH = 5_000


def whale_day_state(hours: float, scale: float) -> tuple[EngineState, int]:
    """The engine state after the whale-day tape, and the number of events fed."""
    from core.timefmt import parse_duration, parse_time
    from sim.generator import GenerateSpec, generate
    from sim.scenario import load_scenario

    config = ConfigLoader().load("small", env={}, overrides={"modules": MODULES})
    with tempfile.TemporaryDirectory(prefix="bench-state-") as tmp:
        tape = Path(tmp) / "tape"
        spec = GenerateSpec(
            scenario=load_scenario("whale-day"),
            symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"),
            exchanges=("binance", "coinbase"),
            start_us=parse_time("2026-01-01T00:00Z", "--start"),
            duration_us=parse_duration(f"{int(hours * 60)}m"),
            scale=scale,
        )
        generate(spec, config, tape, overwrite=True, origin=["benchmarks/bench_state.py"])
        rows = TapeRows(tape)
        engine = Engine(config, ModuleRegistry().build(config))
        for batch_id, lo in enumerate(range(0, len(rows), BATCH)):
            engine.process(parse_batch(rows.raw(lo, min(len(rows), lo + BATCH))), batch_id)
            engine.commit(batch_id)
    return engine.state, len(rows)


def widened(state: EngineState, keys: int) -> EngineState:
    """``keys`` keys, each holding (a copy of) one of ``state``'s keys' states."""
    source = sorted(state.sequencer)
    blob = state.to_bytes()
    out = EngineState()
    for i in range(keys):
        key = source[i % len(source)]
        copy = EngineState.from_bytes(blob)  # a deep copy through the format under test
        new_key = (key[0], f"{key[1]}{i}")
        out.sequencer[new_key] = copy.sequencer[key]
        for module, by_key in copy.detectors.items():
            if key in by_key:
                out.detectors.setdefault(module, {})[new_key] = by_key[key]
    return out


def timed(call: Callable[[], Any], repeat: int) -> float:
    """Median CPU time of ``call`` in milliseconds."""
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        call()
        times.append(time.process_time() - t0)
    return round(statistics.median(times) * 1_000, 3)


def measure(state: EngineState, repeat: int) -> dict[str, Any]:
    """Blob size and median save and restore times of one state."""
    blob = state.to_bytes()
    return {
        "keys": len(state.sequencer),
        "bytes": len(blob),
        "to_bytes_ms": timed(state.to_bytes, repeat),
        "from_bytes_ms": timed(lambda: EngineState.from_bytes(blob), repeat),
    }


def main() -> None:
    """Build the state, measure it as it is and widened to ``--keys``; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--keys", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    state, events = whale_day_state(args.hours, args.scale)
    one_key = sorted(state.sequencer)[0]
    single = EngineState(
        sequencer={one_key: state.sequencer[one_key]},
        detectors={m: {one_key: s[one_key]} for m, s in state.detectors.items() if one_key in s},
    )
    print(json.dumps({
        "events": events,
        "modules": MODULES,
        "one_key": measure(single, args.repeat * 10),
        "tape_keys": measure(state, args.repeat),
        "wide": measure(widened(state, args.keys), max(3, args.repeat // 10)),
    }))


if __name__ == "__main__":
    main()
