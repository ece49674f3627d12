"""``run_bench``'s plan: sides alternate between repeats, ratios per speed, the gate's budgets (the runs
themselves are replaced: each is a whole ``coattail run``, exercised by tests/e2e)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from coattail.bench import session
from coattail.bench.checkout import Checkout
from coattail.bench.compare import Quality
from coattail.bench.measure import Measurement
from coattail.bench.session import BenchPlan, run_bench
from coattail.run.progress import Steps
from pipeline.config import Budgets

PACED = {
    "measured": True,
    "queueing": False,
    "stages": {"results": {"p50": 100.0, "p99": 300.0}, "alert": {"p50": 200.0, "p99": 500.0}},
}


def fake_measure(calls: list[tuple[str, str, int]]) -> Any:
    def measure(
        checkout: Checkout, tapes: Sequence[Path], tier: str, speed: str, runs_dir: Path, repeat: int
    ) -> Measurement:
        calls.append((checkout.name, speed, repeat))
        eps = (60_000.0 if checkout.name == "candidate" else 40_000.0) + repeat
        latency = PACED if speed != "max" else {**PACED, "queueing": True}
        return Measurement(
            checkout.name, speed, repeat, runs_dir, {"throughput_eps": eps, "latency_ms": latency, "ok": True}
        )

    return measure


def test_sides_alternate_and_the_gate_reads_the_budgets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str, int]] = []
    monkeypatch.setattr(session, "measure", fake_measure(calls))
    monkeypatch.setattr(session, "quality", lambda b, c, notes: Quality({"changed": 0}, [], [], {}))
    candidate = Checkout("candidate", tmp_path, "c" * 40, dirty=True)
    baseline = Checkout("baseline", tmp_path, "b" * 40, dirty=False)
    plan = BenchPlan((tmp_path,), "small", ("max", "60x"), 2, tmp_path / "runs", gate=True)
    entry = run_bench(plan, candidate, baseline, Budgets(), Steps())
    assert calls == [
        ("baseline", "max", 1),
        ("candidate", "max", 1),
        ("baseline", "60x", 1),
        ("candidate", "60x", 1),
        ("candidate", "max", 2),
        ("baseline", "max", 2),
        ("candidate", "60x", 2),
        ("baseline", "60x", 2),
    ]
    assert entry["ratios"]["throughput_eps"]["n"] == 2 and entry["ratios"]["throughput_eps"]["median"] > 1.4
    assert "latency results p99 ms @60x" in entry["ratios"]
    assert entry["gate"]["passed"], entry["gate"]["missed"]
    strict = Budgets(max_latency_p99_ms=250.0, min_throughput_eps=70_000.0)
    missed = run_bench(plan, candidate, baseline, strict, Steps())["gate"]["missed"]
    assert len(missed) == 2 and "throughput 60,00" in missed[0] and "results p99 300" in missed[1]


def test_without_a_paced_run_latency_is_not_gated_as_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session, "measure", fake_measure([]))
    candidate = Checkout("candidate", tmp_path, "c" * 40, dirty=False)
    plan = BenchPlan((tmp_path,), "small", ("max",), 1, tmp_path / "runs", gate=True)
    entry = run_bench(plan, candidate, None, Budgets(), Steps())
    assert entry["ratios"] == {} and entry["quality"] is None
    assert entry["gate"]["missed"] == ["latency: no paced run measured it (max speed measures queueing)"]
