"""One measured run of one side: its own ``coattail run`` in its own checkout, read back from its summary.

Every side runs the same command in a child process (``<checkout>/.venv/bin/coattail run TAPE --tier T
--speed S --runs DIR``), so the baseline runs its own code with its own dependencies and the candidate is
measured the same way. What is kept is what both revisions' ``summary.json`` hold; the per-event latency
stages only where the side measured them (``coattail.run.latency``).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from coattail.bench.checkout import Checkout
from core.errors import CoattailError

VALIDATION_FAILED = 1
"""``coattail run``'s exit status when the run completed but failed validation (still measured)."""


@dataclass(frozen=True)
class Measurement:
    """One run's figures."""

    side: str
    speed: str
    repeat: int
    run_dir: Path
    summary: dict[str, Any]
    cold_start_s: float | None = None
    """From launching ``coattail run`` to its first micro-batch with records processed."""

    @property
    def throughput_eps(self) -> float | None:
        """Events per second end to end."""
        value = self.summary.get("throughput_eps")
        return None if value is None else float(value)

    def figures(self) -> dict[str, float | None]:
        """The figures ratios are taken of: throughput, timings, peak memory (the total over the run's
        processes and each group's, ``coattail.run.memory``; where the side measured it) and (paced, when
        measured) latency."""
        timings = self.summary.get("timings_s", {})
        out: dict[str, float | None] = {
            "throughput_eps": self.throughput_eps,
            "end_to_end_s": timings.get("end_to_end_s"),
            "pipeline_start_s": timings.get("pipeline_start_s"),
            "cold_start_s": self.cold_start_s,
            "reference_s": timings.get("reference_s"),
        }
        memory = self.summary.get("memory") or {}
        out["peak_rss_total_mib"] = memory.get("peak_total_mib")
        for group, mib in memory.get("peak_by_group_mib", {}).items():
            out[f"peak_rss {group} mib"] = mib
        latency = self.summary.get("latency_ms", {})
        label = "queueing" if latency.get("queueing") else "latency"
        for stage, pcts in latency.get("stages", {}).items():
            for pct in ("p50", "p99"):
                out[f"{label} {stage} {pct} ms"] = pcts.get(pct)
        return out

    def to_dict(self) -> dict[str, Any]:
        """What the history keeps of it."""
        return {
            "side": self.side,
            "speed": self.speed,
            "repeat": self.repeat,
            "run": str(self.run_dir),
            "ok": self.summary.get("ok"),
            "alerts": self.summary.get("alerts"),
            "events": self.summary.get("events"),
            "figures": self.figures(),
        }


def measure(
    checkout: Checkout, tapes: Sequence[Path], tier: str, speed: str, runs_dir: Path, repeat: int
) -> Measurement:
    """Run ``tapes`` once through ``checkout``'s pipeline; ``CoattailError`` when the run did not finish."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    command = [
        str(checkout.coattail),
        "run",
        *(str(t.resolve()) for t in tapes),
        "--tier",
        tier,
        "--speed",
        speed,
        "--runs",
        str(runs_dir.resolve()),
    ]
    # the child's own checkout decides its state directory; nothing of this process's environment that
    # names one (COATTAIL_STATE_DIR) may point it at the other side's
    env = {k: v for k, v in os.environ.items() if k != "COATTAIL_STATE_DIR"}
    launched_us = time.time_ns() // 1_000
    done = subprocess.run(command, cwd=checkout.path, capture_output=True, text=True, env=env)
    runs = sorted(p for p in runs_dir.iterdir() if (p / "summary.json").is_file())
    if done.returncode not in (0, VALIDATION_FAILED) or not runs:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise CoattailError(f"the {checkout.name} run ({' '.join(command)}) failed:\n{tail}")
    import json

    run_dir = runs[-1]
    return Measurement(
        checkout.name, speed, repeat, run_dir, json.loads((run_dir / "summary.json").read_text()),
        _first_batch_us(run_dir, launched_us),
    )  # fmt: skip


def _first_batch_us(run_dir: Path, launched_us: int) -> float | None:
    """Seconds from ``launched_us`` to when the run's first batch with records was routed (its
    ``metrics/batches.parquet``, which every revision writes); None when it has none."""
    batches = run_dir / "metrics" / "batches.parquet"
    if not batches.is_file():
        return None
    routed = pl.read_parquet(batches).filter(pl.col("records_in") > 0).get_column("routed_us")
    return None if routed.is_empty() else round((routed.to_numpy().min() - launched_us) / 1e6, 3)
