"""``coattail diff RUN_A RUN_B``: alerts that appeared, vanished or changed, per detector and symbol."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from coattail.commands.stack import cli_errors

console = Console()


def diff(
    run_a: Annotated[str, typer.Argument(help="The baseline run (directory, id or `latest`).")],
    run_b: Annotated[str, typer.Argument(help="The run to compare with it.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the full difference as JSON.")] = False,
    runs_root: Annotated[Path, typer.Option("--runs", help="Where run directories are.")] = Path("runs"),
) -> None:
    """Compare two runs' alerts (matched by alert id)."""
    from coattail.diff import diff_outputs
    from coattail.run.outputs import RunOutputs
    from coattail.run.rundir import RunDir

    with cli_errors():
        a, b = RunDir.open(run_a, runs_root), RunDir.open(run_b, runs_root)
        result = diff_outputs(
            RunOutputs.load(a.path / "pipeline"),
            RunOutputs.load(b.path / "pipeline"),
            name_a=a.run_id,
            name_b=b.run_id,
        )
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True, default=str))
        return
    table = Table(
        "detector",
        "exchange:symbol",
        "appeared",
        "vanished",
        "changed",
        "unchanged",
        title=f"{a.run_id} -> {b.run_id}",
    )
    for g in result.groups:
        table.add_row(
            g.detector,
            f"{g.exchange}:{g.symbol}",
            str(len(g.appeared)),
            str(len(g.vanished)),
            str(len(g.changed)),
            str(g.unchanged),
        )
    console.print(table)
    for g in result.groups:
        for kind, rows in (("appeared", g.appeared), ("vanished", g.vanished)):
            for row in rows:
                console.print(
                    f"{kind} {g.detector} {g.symbol} {row['kind']} ts={row['ts_event']} "
                    f"{row['severity']} value={row['value']:.6g}",
                    highlight=False,
                )
        for row in g.changed:
            fields = ", ".join(
                f"{k}: {v['a']} -> {v['b']}" for k, v in row["fields"].items() if k != "evidence"
            )
            if "evidence" in row["fields"]:
                fields += (", " if fields else "") + "evidence changed"
            console.print(
                f"changed {g.detector} {g.symbol} {row['kind']} ts={row['ts_event']}: {fields}",
                highlight=False,
            )
    totals = result.totals()
    console.print(", ".join(f"{k} {v}" for k, v in totals.items()))


def register(app: typer.Typer) -> None:
    """Attach ``diff``."""
    app.command("diff")(diff)
