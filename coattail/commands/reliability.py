"""``coattail reliability crash``: SIGKILL the pipeline at seeded points of a replay and prove that
nothing was lost or doubled (``coattail.reliability.crash``); ``crash-producer``: the same for the
producer, whose losses must be reported (``coattail.reliability.producer_crash``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.table import Table

from coattail.commands.stack import SetOption, TierOption, cli_errors, console, load_config, parse_sets

if TYPE_CHECKING:
    from coattail.run.progress import Steps
    from pipeline.config import Config, RuntimeSettings

R = TypeVar("R")

app = typer.Typer(help="Reliability suites against the local stack.", no_args_is_help=True)
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the kill points.")]
WorkdirOption = Annotated[
    Path | None, typer.Option("--workdir", help="Checkpoints and logs (default: <state dir>/reliability).")
]
KeepOption = Annotated[
    bool, typer.Option("--keep-resources", help="Keep the suite's stream (and tables and namespaces).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]


@app.command("crash")
def crash(
    tapes: Annotated[list[Path], typer.Argument(help="Tape directories to replay (merged by event time).")],
    kills: Annotated[int, typer.Option("--kills", min=1, help="SIGKILLs of the pipeline.")] = 6,
    seed: SeedOption = 0,
    batch: Annotated[
        int, typer.Option("--batch", min=1, help="spark.max_records_per_batch (small: many triggers to hit).")
    ] = 2_000,
    tier: TierOption = "small",
    sets: SetOption = None,
    workdir: WorkdirOption = None,
    keep: KeepOption = False,
    as_json: JsonOption = False,
) -> None:
    """Kill `coattail pipeline run` --kills times at seeded points (Spark start, first trigger, between
    triggers, table commit, DynamoDB writes), restart it from its checkpoint, and compare bronze rows and
    alerts with the tape and an uninterrupted run; exit 1 when anything was lost or duplicated."""
    from coattail.reliability.crash import CrashSuite, plan

    with cli_errors():
        report = _on_stack(load_config(tier, sets=sets), workdir, lambda runtime, root: CrashSuite(
            tapes=tuple(tapes), runtime=runtime, workdir=root, phases=plan(kills, seed), seed=seed,
            tier=tier, overrides=parse_sets(sets), max_records_per_batch=batch, keep_resources=keep,
        ).run)
        if as_json:
            console.print_json(json.dumps(report.as_dict()))
        else:
            table = Table("output", "expected", "found", "lost", "duplicated", "changed",
                          title=f"{report.survived} kills survived ({report.attempts} starts, "
                                f"{report.events:,} tape events)")
            for name, tally in (("bronze rows", report.bronze), ("Iceberg alerts", report.iceberg_alerts),
                                ("DynamoDB alerts", report.dynamodb_alerts)):
                table.add_row(name, *(f"{v:,}" for v in (tally.expected, tally.found, tally.lost,
                                                          tally.duplicated, tally.changed)))
            console.print(table)
            phases = ", ".join(f"{k.phase} ({'killed' if k.reached else 'not reached'} at {k.after_s:.1f} s)"
                               for k in report.kills)
            console.print(f"kills: {phases}", highlight=False)
            verdict = "[green]PASS[/green]: nothing lost or duplicated" if report.ok else "[red]FAIL[/red]"
            console.print(verdict)
        if not report.ok:
            raise typer.Exit(1)


@app.command("crash-producer")
def crash_producer(
    tapes: Annotated[list[Path], typer.Argument(help="Tape directories to serve (merged by event time).")],
    kills: Annotated[int, typer.Option("--kills", min=1, help="SIGKILLs of the producer.")] = 6,
    seed: SeedOption = 0,
    speed: Annotated[
        float, typer.Option("--speed", min=0.01, help="Replay speed (x real time) of the WebSocket server.")
    ] = 20.0,
    tier: TierOption = "small",
    workdir: WorkdirOption = None,
    keep: KeepOption = False,
    as_json: JsonOption = False,
) -> None:
    """Serve the tapes over the replay's WebSocket server to `coattail connect`, SIGKILL the producer
    --kills times mid-feed and restart it, then read the stream back: exit 1 when an event is on it twice,
    is not a tape event, or went missing outside a trade-id gap (a silent loss)."""
    from coattail.reliability.producer_crash import ProducerCrashSuite

    with cli_errors():
        report = _on_stack(load_config(tier), workdir, lambda runtime, root: ProducerCrashSuite(
            tapes=tuple(tapes), runtime=runtime, workdir=root, kills=kills, seed=seed, speed=speed,
            tier=tier, keep_resources=keep,
        ).run)
        if as_json:
            console.print_json(json.dumps(report.as_dict()))
        else:
            table = Table("tape events", "on the stream", "lost, reported", "lost, unreported", "duplicated",
                          "foreign", "trade-id gaps", "missing ids", "MOD-004 TRADE_ID_GAP",
                          title=f"{len(report.kills_at_s)} kills survived ({report.starts} starts)")
            table.add_row(*(f"{v:,}" for v in (report.events, report.on_stream, report.lost_reported,
                                                report.lost_unreported, report.duplicated, report.foreign,
                                                report.gaps, report.missing_trade_ids,
                                                report.mod004_trade_id_gap)))
            console.print(table)
            console.print("kills at " + ", ".join(f"{k:.1f} s" for k in report.kills_at_s)
                          + " after the producer subscribed", highlight=False)
            verdict = ("[green]PASS[/green]: nothing doubled, every loss reported" if report.ok
                       else "[red]FAIL[/red]")
            console.print(verdict)
        if not report.ok:
            raise typer.Exit(1)


def _on_stack(
    config: Config, workdir: Path | None, suite: Callable[[RuntimeSettings, Path], Callable[[Steps], R]]
) -> R:
    """Run ``suite(runtime, workdir)`` with progress on the running stack (started here when none is up,
    and then stopped again); ``workdir`` defaults to ``<state dir>/reliability``."""
    from coattail.run.progress import RichSteps
    from infra.stack import ensure_up

    handle = ensure_up(config)
    try:
        run = suite(handle.runtime, workdir or Path(handle.runtime.state_dir) / "reliability")
        with RichSteps() as steps:
            return run(steps)
    finally:
        handle.release()


def register(root: typer.Typer) -> None:
    """Attach ``coattail reliability``."""
    root.add_typer(app, name="reliability")
