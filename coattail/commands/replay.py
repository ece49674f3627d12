"""``coattail replay TAPE... --target kinesis|ws|memory|stdout --speed 1x|10x|60x|max``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from coattail.commands.stack import SetOption, TierOption, cli_errors, load_config
from core.arrow_memory import use_system_allocator
from core.timefmt import format_us, parse_time
from pipeline.config import Config
from replay.clock import parse_speed
from replay.engine import Progress as ReplayProgress
from replay.engine import Replay, ReplaySummary
from replay.faults import load_fault_spec
from replay.merge import TimeWindow
from replay.targets.base import Target

TargetName = Literal["kinesis", "ws", "memory", "stdout"]
err_console = Console(stderr=True)


def make_target(
    name: TargetName,
    config: Config,
    *,
    aggregate: bool,
    seed: int,
    port: int,
    wait_for: int = 1,
    client_timeout_s: float = 300.0,
) -> Target:
    """The target named on the command line, configured from the tier and the running stack."""
    if name == "kinesis":
        from infra.resolve import find_stack
        from replay.targets.kinesis import KinesisTarget

        runtime = find_stack(config.runtime).runtime
        return KinesisTarget(runtime, config.kinesis.stream, aggregate=aggregate, seed=seed)
    if name == "ws":
        from replay.targets.websocket import WebSocketTarget

        return WebSocketTarget(port=port, wait_for_clients=wait_for, client_timeout_s=client_timeout_s)
    if name == "memory":
        from replay.targets.memory import MemoryTarget

        return MemoryTarget()
    from replay.targets.stdout import StdoutTarget

    return StdoutTarget()


def replay(
    tapes: Annotated[list[Path], typer.Argument(help="Tape directories, merged by exchange time.")],
    target: Annotated[TargetName, typer.Option("--target", help="Where events go.")] = "kinesis",
    speed: Annotated[str, typer.Option("--speed", help="1x, 10x, 60x, any Nx, or max.")] = "max",
    start: Annotated[str | None, typer.Option("--from", help="Exchange-time start (ISO or µs).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Exchange-time end, exclusive.")] = None,
    faults: Annotated[Path | None, typer.Option("--faults", help="Fault-injection YAML.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the fault injection.")] = None,
    aggregate: Annotated[
        bool, typer.Option("--aggregate/--no-aggregate", help="KPL aggregation on Kinesis.")
    ] = True,
    no_tape_faults: Annotated[
        bool, typer.Option("--no-tape-faults", help="Ignore the faults a tape's manifest carries.")
    ] = False,
    port: Annotated[int, typer.Option("--port", help="WebSocket target port (0: any free).")] = 0,
    wait_for: Annotated[
        int,
        typer.Option(
            "--wait-for", min=0, help="WebSocket target: clients that must subscribe before it starts."
        ),
    ] = 1,
    client_timeout: Annotated[
        float, typer.Option("--client-timeout", min=0.001, help="WebSocket target: seconds to wait for them.")
    ] = 300.0,
    labels_out: Annotated[
        Path | None,
        typer.Option(
            "--labels-out", help="Write the labels of injected faults here (JSON: labels, tape_fault_labels)."
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Kinesis: after a killed replay, send only the tape's events the "
                     "stream does not hold yet (reads the whole stream first)."),
    ] = False,
    tier: TierOption = "small",
    sets: SetOption = None,
) -> None:
    """Replay tapes into Kinesis, a local exchange WebSocket server, memory or stdout."""
    with cli_errors():
        config = load_config(tier, sets=sets)
        window = TimeWindow(
            parse_time(start, "--from") if start is not None else None,
            parse_time(end, "--to") if end is not None else None,
        )
        spec = load_fault_spec(faults) if faults is not None else None
        paced = parse_speed(speed)
        sink = make_target(
            target,
            config,
            aggregate=aggregate,
            seed=seed or 0,
            port=port,
            wait_for=wait_for,
            client_timeout_s=client_timeout,
        )
        quiet = target == "stdout"  # stdout carries the data: progress and summary go to stderr
        skip = None
        if resume:
            from replay.resume import events_in_stream
            from replay.targets.kinesis import KinesisTarget

            if not isinstance(sink, KinesisTarget):
                raise typer.BadParameter("--resume works with --target kinesis only")

            skip = events_in_stream(sink.writer.runtime, sink.stream)
            err_console.print(
                f"resuming: {skip.total():,} events are on {sink.stream} already", highlight=False
            )
        use_system_allocator()  # the replay owns this process: see core.arrow_memory
        run = Replay(
            tapes,
            sink,
            speed=paced,
            window=window,
            faults=spec,
            tape_faults=not no_tape_faults,
            seed=seed,
            watermark_us=config.spark.watermark_seconds * 1_000_000,
            skip=skip,
        )
        if target == "ws":
            from replay.targets.websocket import WebSocketTarget

            assert isinstance(sink, WebSocketTarget)
            sink.start()
            err_console.print(
                f"WebSocket server: Binance spot {sink.endpoint('binance')}, USD-M futures "
                f"{sink.endpoint('binance-futures')}, Coinbase {sink.endpoint('coinbase')}; waiting "
                f"{client_timeout:.0f} s for {wait_for} client(s) to subscribe",
                highlight=False,
            )
        start_us, end_us = run.span()
        with Progress(
            TextColumn("[bold]replay[/]"),
            BarColumn(),
            TextColumn("{task.fields[position]}"),
            TextColumn("{task.fields[sent]:,} events"),
            TextColumn("{task.fields[rate]:,.0f}/s"),
            TextColumn("lag {task.fields[lag]}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=quiet,
        ) as bar:
            task = bar.add_task(
                "replay",
                total=max(end_us - start_us, 1),
                position=format_us(start_us, "seconds"),
                sent=0,
                rate=0.0,
                lag="-",
            )
            run.on_progress = lambda p: _update(bar, task, p)
            summary = run.run()
        if labels_out is not None:
            labels_out.write_text(
                json.dumps(
                    {
                        "labels": [label.model_dump(mode="json") for label in summary.labels],
                        "tape_fault_labels": [
                            label.model_dump(mode="json") for label in summary.tape_fault_labels
                        ],
                    },
                    indent=1,
                )
                + "\n"
            )
        _print_summary(summary)


def _update(bar: Progress, task: TaskID, p: ReplayProgress) -> None:
    bar.update(
        task,
        completed=p.position_us - p.start_us,
        position=format_us(p.position_us, "seconds"),
        sent=p.sent,
        rate=p.rate,
        lag="-" if p.lag_ms is None else f"{p.lag_ms:,.0f} ms",
    )


def _print_summary(s: ReplaySummary) -> None:
    table = Table(title="replay summary", title_justify="left", show_header=False)
    table.add_row("target", s.target)
    table.add_row("speed", "max" if s.speed is None else f"{s.speed:g}x")
    table.add_row("events sent", f"{s.sent:,}")
    table.add_row("wall time", f"{s.elapsed_s:.2f} s")
    table.add_row("rate", f"{s.rate:,.0f} events/s")
    if s.first_ts_us is not None and s.last_ts_us is not None:
        table.add_row("exchange time", f"{format_us(s.first_ts_us)} .. {format_us(s.last_ts_us)}")
    if s.lag is not None:
        table.add_row(
            "lag p50 / p99 / max", f"{s.lag.p50_ms:.1f} / {s.lag.p99_ms:.1f} / {s.lag.max_ms:.1f} ms"
        )
    if s.fault_counts:
        table.add_row(
            f"faults (seed {s.seed})", ", ".join(f"{k} {v}" for k, v in sorted(s.fault_counts.items()))
        )
    err_console.print(table)


def register(app: typer.Typer) -> None:
    """Attach ``coattail replay``."""
    app.command("replay")(replay)
