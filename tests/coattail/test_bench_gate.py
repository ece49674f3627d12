"""The end-to-end benchmark's promotion gate (the arithmetic; the run itself is exercised by tests/e2e)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import polars as pl

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_e2e.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_e2e", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_e2e"] = module
    spec.loader.exec_module(module)
    return module


BUDGETS = {"min_throughput_eps": 50_000.0, "max_latency_p50_ms": 400.0, "max_latency_p99_ms": 1_000.0}


def result(eps: float, p50: float | None, p99: float | None) -> dict[str, object]:
    return {"throughput_eps": eps, "latency_ms": {"sent_to_written": {"p50": p50, "p99": p99}}}


def test_gate_passes_within_budget_and_names_each_miss() -> None:
    bench = load_bench()
    assert bench.gate(result(60_000, 300, 900), BUDGETS) == []
    missed = bench.gate(result(10_000, 500, 2_000), BUDGETS)
    assert len(missed) == 3
    assert "throughput 10,000" in missed[0] and "p50 500" in missed[1] and "p99 2,000" in missed[2]
    assert "nothing measured" in bench.gate(result(60_000, None, None), BUDGETS)[0]


def test_stage_latencies_from_alert_stamps() -> None:
    bench = load_bench()
    alerts = pl.DataFrame(
        {"ts_sent": [0, 0, None], "ts_ingest": [1_000, 3_000, 5], "ts_written": [101_000, 203_000, 9]}
    )
    got = bench.stage_latencies(alerts)
    assert got["sent_to_written"]["count"] == 2
    assert got["sent_to_written"]["max"] == 203.0
    assert got["ingest_to_written"]["count"] == 3
