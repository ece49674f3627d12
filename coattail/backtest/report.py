"""The backtest's report: the run report's page (``coattail.report``) with its scorecard and backtest
sections filled, written to ``backtest/report.html`` of the run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from coattail.backtest.engine import BacktestResult
from coattail.report import BacktestView, ReportInputs, build_report
from coattail.run.judge import run_prices
from coattail.run.outputs import DQ_COLUMNS, SPREAD_COLUMNS, RunOutputs
from coattail.run.rundir import RunDir
from pipeline.tables import ALERTS

THROUGHPUT_COLUMNS = {"t_us": pl.Int64, "stage": pl.Utf8, "events": pl.Int64}


def outputs_of(run: RunDir, alpha_scores: pl.DataFrame | None) -> RunOutputs:
    """The run's captured outputs, or (a backtest straight from tapes) none but MOD-011's scores."""
    if (run.path / "pipeline" / "alerts.parquet").is_file():
        return RunOutputs.load(run.path / "pipeline")
    empty = RunOutputs(alerts=ALERTS.schema.empty_table(), dq=pl.DataFrame(schema=DQ_COLUMNS),
                       spread_metrics=pl.DataFrame(schema=SPREAD_COLUMNS), records_in=0, valid=0)
    if alpha_scores is None:
        return empty
    return RunOutputs(alerts=empty.alerts, dq=empty.dq, spread_metrics=empty.spread_metrics, records_in=0,
                      valid=0, alpha_scores=alpha_scores)


def write_report(
    run: RunDir, results: dict[str, BacktestResult], outputs: RunOutputs, tapes: Sequence[Path]
) -> Path:
    """Write ``backtest/report.html``; its path."""
    view = BacktestView(
        summary={n: r.summary for n, r in results.items()},
        equity={n: r.equity for n, r in results.items()},
        trades={n: r.trades for n, r in results.items()},
    )
    html = build_report(ReportInputs(
        title=f"coattail backtest {run.run_id}",
        outputs=outputs,
        prices=run_prices(run.path, tapes),
        throughput=pl.DataFrame(schema=THROUGHPUT_COLUMNS),
        summary={"run_id": run.run_id, "tapes": ", ".join(str(t) for t in tapes)},
        backtest=view,
    ))
    target = run.path / "backtest" / "report.html"
    target.write_text(html)
    return target
