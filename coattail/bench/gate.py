"""The promotion gate's speed budgets: a measured run's figures against the tier's ``Budgets``.

Throughput comes from a run at max speed; latency only from a paced run (at max speed every event waits
behind the whole tape: that is queueing, never compared with a latency budget). The latency budgets are
issue 22's goals: per-event p99 from the scheduled send time to results available
(``max_latency_p99_ms``), and alerts' p50 from sent to DynamoDB written (``max_latency_p50_ms``).
"""

from __future__ import annotations

from typing import Any, Final

LATENCY_BUDGETS: Final = (("results", "p99", "max_latency_p99_ms"), ("alert", "p50", "max_latency_p50_ms"))
"""(stage, percentile, budget) checked on the paced run (``coattail.run.latency.STAGES``)."""


def speed_misses(
    throughput_eps: float | None, latency: dict[str, Any] | None, budgets: dict[str, float]
) -> list[str]:
    """The speed budgets missed, as sentences (empty: the figures may be promoted).

    ``throughput_eps``: from a run at max speed, None when none was measured. ``latency``: a paced run's
    summary latency section (``coattail.run.latency.latency_summary``), None when none was measured."""
    missed = []
    if throughput_eps is None:
        missed.append("throughput: no run at max speed measured it")
    elif throughput_eps < budgets["min_throughput_eps"]:
        missed.append(
            f"throughput {throughput_eps:,.0f} events/s < budget {budgets['min_throughput_eps']:,.0f}"
        )
    if latency is None or not latency.get("measured") or latency.get("queueing"):
        missed.append("latency: no paced run measured it (max speed measures queueing)")
        return missed
    for stage, pct, key in LATENCY_BUDGETS:
        value = latency["stages"].get(stage, {}).get(pct)
        if value is None:
            missed.append(f"latency {stage} {pct}: nothing measured")
        elif value > budgets[key]:
            missed.append(f"latency {stage} {pct} {value:,.0f} ms > budget {budgets[key]:,.0f} ms")
    return missed
