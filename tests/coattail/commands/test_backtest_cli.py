"""``coattail backtest``: from tapes (signals computed by the engine here) and from a run's signals table;
results, the order actions and the report (scorecard and backtest charts drawn in headless Chromium)
land in the run directory; bad input says what to change."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from coattail.backtest.signals import engine_tables, signals_config
from coattail.cli import app
from coattail.run.progress import Steps
from tests.coattail.report.test_report_chromium import chromium_dump_dom, require_chromium
from tests.pipeline.detectors.alpha_kit import planted
from tests.pipeline.test_basis_spark import write_tape

FAST = ["--set", "settings.MOD-011.min_samples=5"]


def test_a_tape_is_backtested_and_reported(tmp_path: Path) -> None:
    tape = write_tape(tmp_path / "tape", planted(5, edge_bps=30.0, whales=60))
    runs = tmp_path / "runs"
    done = CliRunner().invoke(app, ["backtest", str(tape), "--runs", str(runs), "--fees-bps", "4.5", *FAST],
                              terminal_width=200)
    assert done.exit_code == 0, done.output
    (run,) = runs.iterdir()
    summary = json.loads((run / "backtest" / "summary.json").read_text())
    assert summary["follow"]["trades"] > 20 and summary["follow"]["pnl_usd"] > summary["random"]["pnl_usd"]
    assert summary["params"]["fees_bps"] == 4.5
    fills = pl.read_parquet(run / "backtest" / "follow" / "fills.parquet")
    assert fills["fee_usd"].sum() > 0 and set(fills["side"]) == {"buy", "sell"}
    action = json.loads((run / "backtest" / "actions.json").read_text())[0]
    assert action["type"] == "order" and action["orders"][0]["t"] == {"limit": {"tif": "Ioc"}}
    require_chromium()
    dom = chromium_dump_dom(run / "backtest" / "report.html", tmp_path / "profile")
    for chart in ("scorecard", "equity", "per-signal"):
        assert f'id="chart-{chart}"' in dom
    assert dom.count('class="main-svg"') >= 3, "plotly did not draw the charts"


def test_a_run_is_backtested_from_its_signals_table(tmp_path: Path) -> None:
    tape = write_tape(tmp_path / "tape", planted(6, edge_bps=30.0, whales=40))
    runs = tmp_path / "runs"
    assert CliRunner().invoke(app, ["backtest", str(tape), "--runs", str(runs), *FAST]).exit_code == 0
    (run,) = runs.iterdir()
    from_tape = json.loads((run / "backtest" / "summary.json").read_text())
    refused = CliRunner().invoke(app, ["backtest", str(run), "--runs", str(runs)], terminal_width=200)
    assert refused.exit_code == 1 and "signals.parquet" in refused.output
    # the run directory as `coattail run` leaves it: pipeline/signals.parquet, its tapes in run.json
    config = signals_config([tape], {"settings.MOD-011.min_samples": "5"})
    (run / "pipeline").mkdir()
    engine_tables([tape], config, Steps())["signals"].write_parquet(run / "pipeline" / "signals.parquet")
    done = CliRunner().invoke(app, ["backtest", str(run), "--runs", str(runs)], terminal_width=200)
    assert done.exit_code == 0, done.output
    again = json.loads((run / "backtest" / "summary.json").read_text())
    assert again["follow"] == from_tape["follow"] and again["random"] == from_tape["random"]


def test_an_unknown_strategy_is_refused_by_name(tmp_path: Path) -> None:
    args = ["backtest", "latest", "--runs", str(tmp_path), "--strategy", "mean-revert"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 1 and "follow" in out.output
