"""The report renders: headless Chromium runs its scripts and plotly draws every chart."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from coattail.reference import from_tape, run_reference
from coattail.report import ReportInputs, build_report
from coattail.validate import validate_labels
from core.histogram import LogHistogram
from pipeline.config import Config
from tests.coattail.coattail_tapekit import at, make_tape

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHARTS = 4  # price, throughput, latency, data quality


def chromium_dump_dom(page: Path, profile: Path) -> str:
    """The DOM after scripts ran, as headless Chromium serialises it (no network: file:// only)."""
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def require_chromium() -> None:
    """Skip without Chromium on a workstation; in CI (``CI`` set) its absence is a failure."""
    if Path(CHROMIUM).exists():
        return
    hint = f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(hint, pytrace=False)
    pytest.skip(hint)


def test_report_charts_render_in_chromium(tmp_path: Path, config: Config) -> None:
    require_chromium()
    trades = [(i, "BTCUSDT", i + 1, 50_000.0 + i, 0.5, "buy") for i in range(120)]
    trades[60] = (60, "BTCUSDT", 61, 50_060.0, 40.0, "sell")
    quotes = [(i + 0.5, "BTCUSDT", 49_990.0 + i, 50_010.0 + i, i) for i in range(120)]
    tape = make_tape(tmp_path / "t", trades=trades, quotes=quotes)
    outputs = run_reference(from_tape(tape), config)
    alerts = pl.DataFrame(outputs.alerts).with_columns(
        pl.lit(at(0)).alias("ts_sent"), (pl.lit(at(0)) + 250_000).alias("ts_written")
    )
    stamped = type(outputs)(
        alerts.to_arrow().cast(outputs.alerts.schema),
        outputs.dq,
        outputs.spread_metrics,
        outputs.records_in,
        outputs.valid,
    )
    prices = pl.DataFrame(tape.read("trade")).select("exchange", "symbol", "ts_event", "price")
    throughput = pl.DataFrame(
        {
            "t_us": [0, 1_000_000, 2_000_000] * 2,
            "stage": ["sent"] * 3 + ["processed"] * 3,
            "events": [100, 120, 90, 80, 130, 100],
        }
    )
    html_text = build_report(
        ReportInputs(
            title="test run",
            outputs=stamped,
            prices=prices,
            throughput=throughput,
            summary={"events": 240, "run_id": "test"},
            validation=validate_labels([], outputs, dq_window_seconds=60).to_dict(),
            latency={"results": LogHistogram.of(np.array([120_000, 250_000, 900_000])),
                     "alert": LogHistogram.of(np.array([250_000]))},
        )
    )
    assert "<script src=" not in html_text and "<link " not in html_text  # self-contained
    page = tmp_path / "report.html"
    page.write_text(html_text)
    dom = chromium_dump_dom(page, tmp_path / "profile")
    assert dom.count('class="main-svg"') >= CHARTS, "plotly did not draw the charts"
    for name in ("price", "throughput", "latency", "dq"):
        assert f'id="chart-{name}"' in dom
    assert "whale_trade" in dom
