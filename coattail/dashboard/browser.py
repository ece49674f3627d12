"""The dashboard in a real browser: ``dashboard/e2e/dashboard.e2e.mjs`` (playwright-core driving the
system Chromium, headless), started from Python by the end-to-end tests and the dashboard benchmark."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any, Final, Literal

import polars as pl

from coattail.dashboard.server import DIST
from core.errors import CoattailError

PROJECT: Final = DIST.parent
"""``dashboard/``: package.json, node_modules, the e2e script."""
SCRIPT: Final = PROJECT / "e2e" / "dashboard.e2e.mjs"
CHROMIUM: Final = "/usr/bin/chromium"


def missing() -> str | None:
    """What the browser checks lack on this machine (Node, the npm packages, the build, Chromium); None
    when they can run."""
    if shutil.which("node") is None:
        return "Node.js is not installed (apt-get install nodejs npm)"
    if not (PROJECT / "node_modules" / "playwright-core").is_dir():
        return "dashboard/node_modules lacks playwright-core: run `make install` (npm ci in dashboard/)"
    if not (DIST / "index.html").is_file():
        return "the dashboard is not built: run `make install`"
    if not Path(CHROMIUM).exists():
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return None


def expected_alerts(run_path: Path) -> dict[str, Any]:
    """The run's alerts as the finished check expects them listed: ``ids``, ``by_detector`` and
    ``by_symbol`` (alert ids), from what the run captured (``pipeline/alerts.parquet``)."""
    columns = ["alert_id", "detector", "symbol"]
    alerts = pl.read_parquet(run_path / "pipeline" / "alerts.parquet", columns=columns)
    by_detector: dict[str, list[str]] = defaultdict(list)
    by_symbol: dict[str, list[str]] = defaultdict(list)
    for alert_id, detector, symbol in alerts.iter_rows():
        by_detector[detector].append(alert_id)
        by_symbol[symbol].append(alert_id)
    return {"ids": alerts["alert_id"].to_list(), "by_detector": by_detector, "by_symbol": by_symbol}


def start(
    url: str,
    mode: Literal["live", "finished"],
    out: Path,
    expected: dict[str, Any] | None = None,
    timeout_s: float = 600.0,
) -> subprocess.Popen[str]:
    """Start the browser script against the dashboard at ``url``; ``finish`` waits for its result."""
    out = out.resolve()  # the script runs in dashboard/
    out.mkdir(parents=True, exist_ok=True)
    spec = {"url": url, "mode": mode, "out": str(out), "chromium": CHROMIUM, "expected": expected,
            "timeout_ms": int(timeout_s * 1000)}  # fmt: skip
    (out / "spec.json").write_text(json.dumps(spec))
    return subprocess.Popen(
        ["node", str(SCRIPT), str(out / "spec.json")],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen[str], out: Path, timeout_s: float = 600.0) -> dict[str, Any]:
    """The script's ``result.json`` once it exited (its output is in ``log`` when it wrote none)."""
    try:
        log, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        process.kill()
        raise CoattailError(f"the browser check did not finish within {timeout_s:.0f} s") from e
    result_file = out / "result.json"
    if not result_file.is_file():
        raise CoattailError(f"the browser check wrote no result (exit {process.returncode}): {log[-2000:]}")
    result: dict[str, Any] = json.loads(result_file.read_text())
    result["log"] = log
    return result
