"""``coattail faults``: the emulator-fault suite (``coattail.run.faultsuite``) with a progress bar and a
table of the faults injected per kind and the rows and alerts lost and duplicated (must be 0)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from coattail.commands.run import _demo_tape
from coattail.commands.stack import cli_errors
from coattail.run.faultsuite import SUITES, SuiteReport
from pipeline.config import ProfileName, TierName

console = Console()
_KINDS = ("throttle", "server_error", "reset", "slow", "lost_response")


def faults(
    tapes: Annotated[
        list[Path] | None, typer.Argument(help="Tapes to replay (default: a generated whale-day tape).")
    ] = None,
    suite: Annotated[str, typer.Option("--suite", help=f"Which specs: {', '.join(SUITES)}.")] = "full",
    tier: Annotated[TierName, typer.Option("--tier")] = "small",
    profile: Annotated[
        ProfileName,
        typer.Option("--profile", help="lite (SQLite catalog) or mirror (Glue + S3 on the emulator)."),
    ] = "lite",
    duration: Annotated[str, typer.Option("--duration", help="Generated tape's length.")] = "30m",
    scale: Annotated[float, typer.Option("--scale", help="Generated tape's activity scale.")] = 0.1,
    speed: Annotated[
        str, typer.Option("--speed", help="Replay speed (paced replays make many more AWS calls than max).")
    ] = "60x",
    batch_records: Annotated[
        int, typer.Option("--batch-records", help="spark.max_records_per_batch: more batches, more calls.")
    ] = 2_000,
    runs_root: Annotated[Path, typer.Option("--runs", help="Where run directories go.")] = Path("runs"),
) -> None:
    """Replay a tape straight into a fresh emulator, then through the fault proxy under each fault spec;
    exit 1 unless every faulted run ends with exactly the baseline's rows and alerts."""
    from coattail.run.faultsuite import run_fault_suite
    from coattail.run.orchestrate import RunRequest
    from coattail.run.progress import RichSteps
    from infra import emulator
    from replay.clock import parse_speed

    with cli_errors():
        if suite not in SUITES:
            raise typer.BadParameter(f"choose one of {', '.join(SUITES)}", param_hint="--suite")
        if profile == "aws":
            raise typer.BadParameter("faults go in front of a local emulator", param_hint="--profile")
        if not tapes:
            name = f"whale-day-{duration}-x{scale:g}-s7"
            tapes = [_demo_tape(runs_root / "tapes" / name, duration, scale, 7)]
        suite_dir = runs_root / f"faults-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
        moto = emulator.start("moto", suite_dir / "emulator")
        try:
            request = RunRequest(
                tapes=tuple(tapes), tier=tier, profile=profile, runs_root=runs_root, name="faults",
                speed=parse_speed(speed),
                overrides={"spark.max_records_per_batch": batch_records},
            )
            with RichSteps(Console(stderr=True)) as steps:
                state = suite_dir / "state"
                report = run_fault_suite(request, SUITES[suite], moto.endpoint, state, steps=steps)
        finally:
            emulator.server_process("moto", suite_dir / "emulator").stop()
        (suite_dir / "faults.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        print_report(report)
        console.print(f"report: {suite_dir / 'faults.json'}", highlight=False)
        if not report.ok:
            raise typer.Exit(1)


def print_report(report: SuiteReport) -> None:
    """One row per faulted run: faults injected per kind, quota refusals, rows lost and duplicated."""
    table = Table(title=f"fault suite (baseline {report.baseline_run_id})")
    columns = ("run", "requests", *_KINDS, "quota refusals", "rows compared", "lost", "duplicated", "result")
    for column in columns:
        table.add_column(column)
    for run in report.runs:
        injected = run.proxy["injected"]
        quota = run.proxy.get("kinesis_quota")
        refusals = f"{quota['refused_records']} puts, {quota['refused_reads']} reads" if quota else "-"
        table.add_row(
            run.name,
            f"{run.proxy['requests']:,}",
            *(str(injected.get(kind, 0)) for kind in _KINDS),
            refusals,
            f"{sum(t.baseline for t in run.tallies):,}",
            str(run.lost),
            str(run.duplicated),
            "[green]pass[/green]" if run.ok else "[red]FAIL[/red]",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Attach ``coattail faults``."""
    app.command("faults")(faults)
