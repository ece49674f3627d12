"""The micro benchmarks (benchmarks/micro, ``make bench-micro``) still run: once each, untimed, on a small
batch, so a change that breaks one is caught by ``make test`` and not at the next measurement."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_micro_benchmark_runs_once_untimed(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/micro", "-q", "--benchmark-disable", "--micro-events",
         "2000", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'micro'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout
