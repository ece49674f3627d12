"""One ``coattail bench`` invocation: the runs, alternating the sides, then ratios, quality and the gate."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coattail.bench.checkout import Checkout
from coattail.bench.compare import Quality, quality, ratios
from coattail.bench.gate import speed_misses
from coattail.bench.history import machine_facts
from coattail.bench.measure import Measurement, measure
from coattail.bench.release_notes import load_release_notes
from coattail.run.progress import Steps
from pipeline.config import Budgets


@dataclass(frozen=True)
class BenchPlan:
    """What to measure."""

    tapes: tuple[Path, ...]
    tier: str
    speeds: tuple[str, ...]
    repeat: int
    runs_dir: Path
    gate: bool


def run_bench(
    plan: BenchPlan, candidate: Checkout, baseline: Checkout | None, budgets: Budgets, steps: Steps
) -> dict[str, Any]:
    """Measure, compare and judge; returns the history entry (``gate`` None unless asked for).

    Each repeat runs every speed on both sides back to back, the side that goes first alternating from
    one repeat to the next (so a machine that slows down over the session does not favour one side)."""
    machine = machine_facts()
    measurements: list[Measurement] = []
    for i in range(plan.repeat):
        sides = (
            [candidate]
            if baseline is None
            else ([baseline, candidate] if i % 2 == 0 else [candidate, baseline])
        )
        for speed in plan.speeds:
            for side in sides:
                with steps.step(f"repeat {i + 1}/{plan.repeat}: {side.name} at {speed}"):
                    measurements.append(
                        measure(
                            side,
                            plan.tapes,
                            plan.tier,
                            speed,
                            plan.runs_dir / side.name / f"{speed}-{i + 1}",
                            i + 1,
                        )
                    )
    machine["load_after_1_5_15"] = machine_facts()["load_1_5_15"]
    entry: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": {"candidate": _git(candidate), "baseline": None if baseline is None else _git(baseline)},
        "machine": machine,
        "options": {
            "tapes": [str(t) for t in plan.tapes],
            "tier": plan.tier,
            "speeds": list(plan.speeds),
            "repeat": plan.repeat,
        },
        "measurements": [m.to_dict() for m in measurements],
        "ratios": {},
        "quality": None,
        "gate": None,
    }
    by = {(m.side, m.speed, m.repeat): m for m in measurements}
    verdict: Quality | None = None
    if baseline is not None:
        for speed in plan.speeds:
            pairs = [
                (by[("baseline", speed, i)], by[("candidate", speed, i)]) for i in range(1, plan.repeat + 1)
            ]
            suffix = "" if speed == plan.speeds[0] else f" @{speed}"
            entry["ratios"] |= {name + suffix: r for name, r in ratios(pairs).items()}
        verdict = quality(
            by[("baseline", plan.speeds[0], 1)],
            by[("candidate", plan.speeds[0], 1)],
            load_release_notes(candidate.path),
        )
        entry["quality"] = verdict.to_dict()
    if plan.gate:
        entry["gate"] = _gate(plan, by, verdict, budgets)
    return entry


def _gate(
    plan: BenchPlan, by: dict[tuple[str, str, int], Measurement], verdict: Quality | None, budgets: Budgets
) -> dict[str, Any]:
    """The candidate's median throughput at max speed (the lower middle of an even count) and its first
    paced run against the budgets, plus the quality budgets when a baseline was measured."""
    limits = budgets.model_dump()
    at_max = [by[("candidate", "max", i)].throughput_eps or 0.0 for i in range(1, plan.repeat + 1)]
    eps = statistics.median_low(at_max) if "max" in plan.speeds else None
    paced = next((by[("candidate", s, 1)] for s in plan.speeds if s != "max"), None)
    missed = speed_misses(eps, None if paced is None else paced.summary.get("latency_ms"), limits)
    failed_runs = [
        f"{m.side} {m.speed} #{m.repeat}"
        for m in by.values()
        if m.side == "candidate" and not m.summary.get("ok")
    ]
    if failed_runs:
        missed.append("candidate runs failed validation: " + ", ".join(failed_runs))
    if verdict is not None:
        missed += verdict.misses(limits)
    return {"passed": not missed, "missed": missed, "budgets": limits}


def _git(checkout: Checkout) -> dict[str, Any]:
    return {"commit": checkout.commit, "dirty": checkout.dirty, "path": str(checkout.path)}
