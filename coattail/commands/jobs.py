"""``coattail load TAPE...`` and ``coattail reprocess``: the batch jobs over the Iceberg bronze tables."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from coattail.commands.stack import ProfileOption, SetOption, TierOption, cli_errors, load_config
from core.timefmt import parse_time
from pipeline.config import Config

console = Console()


def resolve_runtime(config: Config) -> Config:
    """Point a non-lite profile at the stack (``infra.resolve``); lite needs none (local catalog)."""
    if config.runtime.profile == "lite":
        return config
    from infra.resolve import with_stack

    return with_stack(config)


def load(
    tapes: Annotated[list[Path], typer.Argument(help="Tape directories (manifest.json + Parquet).")],
    tier: TierOption = "small",
    profile: ProfileOption = None,
    sets: SetOption = None,
) -> None:
    """Load tapes into the bronze tables; loading a tape again replaces its rows (one copy, never two)."""
    from pipeline.jobs.loader import load_tape, read_manifest
    from pipeline.sinks.iceberg import IcebergSink

    with cli_errors():
        config = resolve_runtime(load_config(tier, sets=sets, profile=profile))
        sink = IcebergSink(config)
        total = sum(sum(read_manifest(t)["rows"].values()) for t in tapes)
        summary = Table(title=f"bronze tables in {config.storage.namespace} ({config.runtime.profile})")
        for column in ("tape", "days", "instruments", "trades", "quotes"):
            summary.add_column(column)
        started = time.perf_counter()
        with Progress(
            TextColumn("loading"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,} rows"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("load", total=total)
            for tape in tapes:
                result = load_tape(tape, sink, progress=lambda n: bar.advance(task, n))
                summary.add_row(
                    str(tape),
                    ", ".join(result.days),
                    str(len(result.instruments)),
                    f"{result.rows.get('trades', 0):,}",
                    f"{result.rows.get('quotes', 0):,}",
                )
        console.print(summary)
        console.print(f"loaded {total:,} rows in {time.perf_counter() - started:.1f} s", highlight=False)


def reprocess(
    start: Annotated[str, typer.Option("--from", help="Start (inclusive): ISO-8601 UTC or µs.")],
    end: Annotated[str, typer.Option("--to", help="End (exclusive): ISO-8601 UTC or µs.")],
    output: Annotated[str, typer.Option("--output", help="Output name: tables alerts_<name>, ...")],
    detectors: Annotated[
        str | None, typer.Option("--detectors", help="Comma-separated ids (default: the tier's modules).")
    ] = None,
    tier: TierOption = "small",
    profile: ProfileOption = None,
    sets: SetOption = None,
) -> None:
    """Re-run detectors over a time range of the bronze tables into ``<table>_<output>`` tables."""
    from pipeline.jobs.reprocessor import check_request
    from pipeline.jobs.reprocessor import reprocess as run
    from pipeline.spark import build_session

    with cli_errors():
        config = resolve_runtime(load_config(tier, sets=sets, profile=profile))
        modules = (
            [m.strip() for m in detectors.split(",") if m.strip()] if detectors else list(config.modules)
        )
        start_us, end_us = parse_time(start, "--from"), parse_time(end, "--to")
        check_request(modules, start_us, end_us, output)
        with console.status("starting Spark"):
            spark, _ = build_session(config, app_name=f"coattail-reprocess-{output}")
        try:
            with Progress(
                TextColumn(f"reprocessing with {','.join(modules)}"),
                BarColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as bar:
                bar.add_task("reprocess", total=None)
                started = time.perf_counter()
                result = run(spark, config, modules=modules, start_us=start_us, end_us=end_us, name=output)
                elapsed = time.perf_counter() - started
        finally:
            spark.stop()
        table = Table(title=f"reprocess {output}")
        for column in ("output", "table", "rows"):
            table.add_column(column)
        for name, data in sorted(result.tables.items()):
            table.add_row(name, result.written.get(name, "-"), f"{data.num_rows:,}")
        console.print(table)
        rate = result.events / elapsed if elapsed > 0 else 0.0
        console.print(f"{result.events:,} events in {elapsed:.1f} s ({rate:,.0f} events/s)", highlight=False)


def register(app: typer.Typer) -> None:
    """Attach ``coattail load`` and ``coattail reprocess``."""
    app.command("load")(load)
    app.command("reprocess")(reprocess)
