"""``coattail bench``: the promotion gate's measurement, against a baseline revision; ``bench history``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from coattail.commands.stack import cli_errors
from pipeline.config import TierName

console = Console()
HISTORY = Path(".coattail") / "bench" / "history.jsonl"
SHOWN = ("cold_start_s", "peak_rss_total_mib", "results p99 ms", "freshness p99 ms", "alert p50 ms")
"""The per-event figures the runs table shows (the rest are in the history and each run's summary)."""


def bench(
    ctx: typer.Context,
    tier: Annotated[TierName, typer.Option("--tier", help="Config tier.")] = "small",
    tapes: Annotated[
        list[Path] | None, typer.Option("--tape", help="Tape to replay (repeatable; default: the demo day).")
    ] = None,
    events: Annotated[
        int | None, typer.Option("--events", help="Replay only the tape's first N events.")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="Replay only events from this exchange time on (ISO or µs).")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="... and before this one (exclusive).")] = None,
    busiest: Annotated[
        str | None,
        typer.Option("--busiest", help="Replay only the tape's busiest window of this length (1h, 15m)."),
    ] = None,
    speeds: Annotated[
        list[str] | None,
        typer.Option(
            "--speed",
            help="max (throughput; latency is queueing) or 1x, 10x, 60x ... (latency); "
            "repeatable (default max, plus 60x with --gate).",
        ),
    ] = None,
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="Runs per side and speed.")] = 1,
    gate: Annotated[bool, typer.Option("--gate", help="Exit 1 when a budget of the tier is missed.")] = False,
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", help="Git revision to compare with, run alternately in its own checkout."),
    ] = None,
    history: Annotated[
        Path, typer.Option("--history", help="History file results are appended to.")
    ] = HISTORY,
    runs_root: Annotated[Path, typer.Option("--runs", help="Where run directories go.")] = Path("runs"),
) -> None:
    """Measure the working tree's pipeline end to end (throughput, every event's latency, quality), against
    a baseline revision when asked, and append the results to the history."""
    if ctx.invoked_subcommand is not None:
        return
    from datetime import UTC, datetime

    from coattail.bench.checkout import REPO, revision, working_tree
    from coattail.bench.history import append
    from coattail.bench.session import BenchPlan, run_bench
    from coattail.commands.run import DEMO_DURATION, DEMO_SEED, _demo_tape
    from coattail.run.progress import RichSteps
    from pipeline.config import ConfigLoader

    with cli_errors():
        chosen = list(tapes or [])
        if not chosen:
            name = f"whale-day-{DEMO_DURATION}-x1-s{DEMO_SEED}"
            chosen = [_demo_tape(runs_root / "tapes" / name, DEMO_DURATION, 1.0, DEMO_SEED, tier)]
        chosen = _cut(chosen, events, start, end, busiest, runs_root / "tapes")
        every_speed = list(speeds or ["max"])
        if gate and all(s == "max" for s in every_speed):
            every_speed.append("60x")  # latency budgets need a paced run
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        plan = BenchPlan(tuple(chosen), tier, tuple(every_speed), repeat, runs_root / "bench" / stamp, gate)
        with RichSteps(Console(stderr=True)) as steps:
            base = None
            if baseline is not None:
                with steps.step(f"baseline {baseline}: checkout and venv") as task:
                    base = revision(baseline, REPO / ".coattail", lambda note: task.update(note=note))
            entry = run_bench(plan, working_tree(), base, ConfigLoader().load(tier).budgets, steps)
        append(history, entry)
        _print(entry)
        console.print(f"history: {history} (`coattail bench history` draws it)")
        if entry["gate"] is not None and not entry["gate"]["passed"]:
            raise typer.Exit(1)


def _cut(
    tapes: list[Path], events: int | None, start: str | None, end: str | None, busiest: str | None,
    root: Path,
) -> list[Path]:
    """The tapes to replay: as given, or one tape cut by ``--events``, ``--from/--to`` or ``--busiest``
    (one of them), reused under ``root`` when made before."""
    from coattail.bench.tapes import busiest as busiest_window
    from coattail.bench.tapes import head, window
    from core.tape import Tape
    from core.timefmt import format_us, parse_duration, parse_time

    given = [name for name, value in (("--events", events), ("--from/--to", start or end),
                                      ("--busiest", busiest)) if value is not None]
    if not given:
        return tapes
    if len(given) > 1:
        raise typer.BadParameter(f"{' and '.join(given)} both cut the tape: give one of them")
    if len(tapes) != 1:
        raise typer.BadParameter(f"{given[0]} cuts one tape; give a single --tape", param_hint=given[0])
    tape = tapes[0]
    if events is not None:
        return [head(tape, events, root / f"{tape.name}-first-{events}")]
    if busiest is not None:
        first, last, count = busiest_window(Tape.open(tape), parse_duration(busiest))
        console.print(f"busiest {busiest} of {tape.name}: {format_us(first)} .. {format_us(last)}, "
                      f"{count:,} events", highlight=False)
        return [window(tape, first, last, root / f"{tape.name}-busiest-{busiest}")]
    lo = parse_time(start, "--from") if start is not None else None
    hi = parse_time(end, "--to") if end is not None else None
    return [window(tape, lo, hi, root / f"{tape.name}-from-{lo or 'start'}-to-{hi or 'end'}")]


def _print(entry: dict[str, Any]) -> None:
    table = Table("side", "speed", "#", "events", "ev/s", "figures", title="runs")
    for m in entry["measurements"]:
        f = m["figures"]
        shown = {k: v for k, v in f.items() if k.endswith(SHOWN) and v is not None}
        table.add_row(
            m["side"],
            m["speed"],
            str(m["repeat"]),
            f"{m['events']:,}",
            f"{f['throughput_eps'] or 0:,.0f}",
            ", ".join(f"{k} {v:,.0f}" for k, v in shown.items()),
        )
    console.print(table)
    if entry["ratios"]:
        ratios = Table(
            "figure",
            "candidate / baseline (median)",
            "min",
            "max",
            "pairs",
            title="ratios (same tape, same machine, alternating)",
        )
        for name, r in entry["ratios"].items():
            ratios.add_row(name, f"{r['median']:.3f}", f"{r['min']:.3f}", f"{r['max']:.3f}", f"{r['n']:.0f}")
        console.print(ratios)
    if entry["quality"] is not None:
        q = entry["quality"]
        console.print(
            f"alerts against the baseline: {q['diff']}; undeclared changes {len(q['undeclared'])}, "
            f"lost labels {len(q['lost_labels'])}"
        )
    if entry["gate"] is not None:
        g = entry["gate"]
        if g["passed"]:
            console.print("[green]promotion gate: passed[/green]")
        else:
            console.print("[red]promotion gate: FAILED[/red]\n  " + "\n  ".join(g["missed"]))


def history_page(
    history: Annotated[Path, typer.Option("--history", help="History file to draw.")] = HISTORY,
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML file (default: next to the history).")
    ] = None,
) -> None:
    """Draw the benchmark history as an HTML page (throughput and ratios over the entries)."""
    from coattail.bench.history import page, read

    with cli_errors():
        target = out or history.with_suffix(".html")
        target.write_text(page(read(history)))
        console.print(f"history page: {target}")


def register(app: typer.Typer) -> None:
    """Attach ``bench`` and ``bench history``."""
    group = typer.Typer(help="Benchmarks and the promotion gate.", invoke_without_command=True)
    group.callback()(bench)
    group.command("history")(history_page)
    app.add_typer(group, name="bench")
