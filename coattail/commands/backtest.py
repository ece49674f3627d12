"""``coattail backtest RUN_OR_TAPE...``: paper-trade follow signals against the replayed market, beside
random entries at the same times and sizes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.table import Table

from coattail.commands.stack import cli_errors, parse_sets

console = Console()
ROWS = ("trades", "pnl_usd", "return", "max_drawdown_usd", "hit_rate", "turnover", "fees_usd", "t_stat",
        "sharpe")


def backtest(
    sources: Annotated[list[str], typer.Argument(help="A run (dir, id, `latest`) or tapes, day order.")],
    strategy: Annotated[str, typer.Option(help="What to trade: `follow` (MOD-011's signals).")] = "follow",
    fees_bps: Annotated[float, typer.Option(help="Fees per fill, bps of its notional.")] = 4.5,
    latency_ms: Annotated[int, typer.Option(help="Order sent this long after the decision.")] = 50,
    size_usd: Annotated[float, typer.Option(help="Notional of each entry.")] = 10_000.0,
    max_position_usd: Annotated[float, typer.Option(help="Open exposure allowed per asset.")] = 50_000.0,
    slippage_bps: Annotated[float, typer.Option(help="IOC limit's distance from the reference.")] = 50.0,
    seed: Annotated[int, typer.Option(help="Seed of the random-direction baseline.")] = 7,
    days: Annotated[str | None, typer.Option(
        help="Walk forward over UTC days D1..Dn (YYYY-MM-DD..YYYY-MM-DD): each day trades the sources "
        "the days before it scored.")] = None,
    sets: Annotated[
        list[str] | None, typer.Option("--set", help="Config override key=value for signals from tapes.")
    ] = None,
    runs_root: Annotated[Path, typer.Option("--runs", help="Where run directories are.")] = Path("runs"),
) -> None:
    """Trade a run's follow signals (or the signals of tapes) as Hyperliquid orders; write fills,
    trades, the equity curve and the figures under the run's ``backtest/``."""
    from coattail.backtest.engine import BacktestParams
    from coattail.backtest.report import outputs_of, write_report
    from coattail.backtest.signals import engine_tables, scores_of_run, signals_config, signals_of_run
    from coattail.backtest.trade import trade
    from coattail.backtest.walkforward import parse_days, walk_forward_signals
    from coattail.run.progress import RichSteps
    from coattail.run.rundir import RunDir
    from core.errors import CoattailError
    from pipeline.detectors.alpha_scoring import ALPHA_SCORES, SIGNALS, AlphaScoring, AlphaSettings

    with cli_errors():
        if strategy != "follow":
            raise CoattailError(f"unknown strategy {strategy!r}; the one strategy is `follow`")
        params = BacktestParams(fees_bps, latency_ms, size_usd, max_position_usd, slippage_bps, seed)
        with RichSteps() as steps:
            scores = None
            settings = AlphaSettings()
            if len(sources) == 1 and not (Path(sources[0]) / "manifest.json").is_file():
                run = RunDir.open(sources[0], runs_root)
                signals, tapes = signals_of_run(run)
                if days is not None:
                    scores, settings = scores_of_run(run)
            else:
                tapes = [Path(s) for s in sources]
                config = signals_config(tapes, parse_sets(sets))
                tables = engine_tables(tapes, config, steps)
                signals, scores = tables[SIGNALS.name], tables[ALPHA_SCORES.name]
                settings = cast(AlphaSettings, config.settings_for(AlphaScoring.module_id))
                run = RunDir.create(runs_root, "backtest")
                run.write_json("run.json", {"kind": "backtest", "tapes": [str(t) for t in tapes]})
            if days is not None and scores is not None:
                signals = walk_forward_signals(scores, parse_days(days), settings)
            results = trade(signals, tapes, params, steps)
        out = run.path / "backtest"
        for name, result in results.items():
            (out / name).mkdir(parents=True, exist_ok=True)
            result.fills.write_parquet(out / name / "fills.parquet")
            result.trades.write_parquet(out / name / "trades.parquet")
            result.equity.write_parquet(out / name / "equity.parquet")
        summary: dict[str, Any] = {"params": vars(params), "days": days,
                                   **{n: r.summary for n, r in results.items()}}
        run.write_json("backtest/summary.json", summary)
        run.write_json("backtest/actions.json", results["follow"].actions)
        report = write_report(run, results, outputs_of(run, scores), tapes)
    table = Table("figure", "follow", "random", title=f"backtest of {run.run_id} ({signals.height} signals)")
    for row in ROWS:
        table.add_row(row, *(_cell(results[n].summary.get(row)) for n in ("follow", "random")))
    console.print(table)
    console.print(f"results in {out} (report {report.name}); rejected orders: "
                  f"{json.dumps(results['follow'].summary['rejected'])}")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:,.4g}" if isinstance(value, float) else str(value)


def register(app: typer.Typer) -> None:
    """Attach ``coattail backtest``."""
    app.command("backtest")(backtest)
