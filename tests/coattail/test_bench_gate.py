"""The promotion gate's speed budgets (the arithmetic; the runs themselves are exercised by tests/e2e)."""

from __future__ import annotations

from typing import Any

from coattail.bench.gate import speed_misses

BUDGETS = {"min_throughput_eps": 50_000.0, "max_latency_p50_ms": 400.0, "max_latency_p99_ms": 1_000.0}


def paced(results_p99: float | None, alert_p50: float | None) -> dict[str, Any]:
    return {"measured": True, "queueing": False,
            "stages": {"results": {"p99": results_p99}, "alert": {"p50": alert_p50}}}


def test_gate_passes_within_budget_and_names_each_miss() -> None:
    assert speed_misses(60_000, paced(900, 300), BUDGETS) == []
    missed = speed_misses(10_000, paced(2_000, 500), BUDGETS)
    assert len(missed) == 3
    assert "throughput 10,000" in missed[0]
    assert "results p99 2,000" in missed[1] and "alert p50 500" in missed[2]
    assert "nothing measured" in speed_misses(60_000, paced(None, 300), BUDGETS)[0]


def test_queueing_is_never_compared_with_a_latency_budget() -> None:
    queueing = paced(5, 5) | {"queueing": True}
    assert "no paced run" in speed_misses(60_000, queueing, BUDGETS)[0]
    assert "no paced run" in speed_misses(60_000, None, BUDGETS)[0]


def test_no_run_at_max_speed_is_a_miss_not_a_zero() -> None:
    assert speed_misses(None, paced(900, 300), BUDGETS) == ["throughput: no run at max speed measured it"]
