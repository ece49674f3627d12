"""``coattail validate RUN [--golden FILE]``: judge a run again; exit non-zero on any miss."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from coattail.commands.stack import cli_errors

console = Console()


def validate(
    run: Annotated[str, typer.Argument(help="Run directory, run id, or `latest`.")],
    golden: Annotated[
        Path | None, typer.Option("--golden", help="Golden alert file to compare with.")
    ] = None,
    runs_root: Annotated[Path, typer.Option("--runs", help="Where run directories are.")] = Path("runs"),
) -> None:
    """Match the run's alerts against its labels, the reference implementation and a golden file."""
    from coattail.run.judge import judge
    from coattail.run.rundir import RunDir
    from pipeline.config import Config

    with cli_errors():
        run_dir = RunDir.open(run, runs_root)
        config = Config.model_validate(run_dir.read_json("config.json"))
        judgement = judge(run_dir, config, golden=golden)
    print_validation(judgement.validation)
    console.print(f"report: {run_dir.path / 'report.html'}")
    if not judgement.ok:
        console.print("[red]validation failed[/red]")
        raise typer.Exit(1)
    console.print("[green]validation passed[/green]")


def print_validation(v: dict[str, Any]) -> None:
    """Scores, misses, reference differences and golden differences as tables."""
    labels = v["labels"]
    scores = Table(
        "detector",
        "labels",
        "hit",
        "alerts",
        "true positives",
        "precision",
        "recall",
        title=f"labels: {labels['labels'] - labels['misses']} of {labels['labels']} hit",
    )
    for s in labels["scores"]:
        scores.add_row(
            s["detector"],
            str(s["labels"]),
            str(s["hit"]),
            str(s["alerts"]),
            str(s["true_positives"]),
            _pct(s["precision"]),
            _pct(s["recall"]),
        )
    console.print(scores)
    for miss in [r for r in labels["results"] if not r["hit"]]:
        lb = miss["label"]
        console.print(
            f"[red]missed[/red] {lb['kind']} {lb['detector']} {lb['exchange']}:{lb['symbol']} "
            f"[{lb['start_us']}, {lb['end_us']}]: {miss['detail']}"
        )
    if labels["unexpected_alerts"]:
        console.print(f"{len(labels['unexpected_alerts'])} alerts no label asked for (see the report)")
    ref = v["reference"]
    if ref["ok"]:
        console.print(f"reference implementation: [green]agrees[/green] ({ref['reference_alerts']} alerts)")
    else:
        console.print(f"reference implementation: [red]{ref['differences']} differences[/red]")
        for key in (
            "only_pipeline",
            "only_reference",
            "alert_differences",
            "spread_differences",
            "basis_differences",
            "flow_differences",
            "impact_differences",
            "alpha_differences",
            "signal_differences",
            "dq_differences",
        ):
            for item in ref[key][:20]:
                console.print(f"  {key}: {item}", highlight=False)
    golden = v.get("golden")
    if golden is not None:
        state = "[green]matches[/green]" if golden["ok"] else "[red]differs[/red]"
        console.print(
            f"golden {golden['path']}: {state} (golden {golden['expected']}, run {golden['actual']})"
        )
        for key in ("missing", "unexpected", "changed"):
            for item in golden[key][:20]:
                console.print(f"  {key}: {item}", highlight=False)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def register(app: typer.Typer) -> None:
    """Attach ``validate``."""
    app.command("validate")(validate)
