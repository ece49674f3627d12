"""``coattail sim generate``: a synthetic, labelled market tape (see ``sim/``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from coattail.commands.stack import cli_errors
from pipeline.config import ConfigLoader, TierName

console = Console()


def generate(
    out: Annotated[Path, typer.Option("--out", help="Tape directory to write.")],
    scenario: Annotated[
        str,
        typer.Option(
            "--scenario", help="Preset (quiet-day, whale-day, flash-crash, dirty-feed) or YAML file."
        ),
    ] = "quiet-day",
    symbols: Annotated[str, typer.Option("--symbols", help="Comma-separated, e.g. BTCUSDT,ETHUSDT.")] = (
        "BTCUSDT,ETHUSDT,SOLUSDT"
    ),
    exchanges: Annotated[
        str, typer.Option("--exchanges", help="Comma-separated: binance, binance-futures, coinbase.")
    ] = "binance,coinbase",
    start: Annotated[str, typer.Option("--start", help="ISO-8601 start (UTC).")] = "2026-01-01T00:00Z",
    duration: Annotated[str, typer.Option("--duration", help="Like 1d, 2h, 30m, 1h30m.")] = "1d",
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same bytes.")] = 7,
    scale: Annotated[float, typer.Option("--scale", help="Volume multiplier (labels do not change).")] = 1.0,
    tier: Annotated[TierName, typer.Option("--tier", help="Config tier whose thresholds apply.")] = "small",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing tape at --out.")
    ] = False,
) -> None:
    """Generate a synthetic market tape with the scenario's injected events and their labels."""
    from core.timefmt import parse_duration, parse_time
    from sim.generator import GenerateSpec
    from sim.generator import generate as run
    from sim.scenario import load_scenario

    with cli_errors():
        spec = GenerateSpec(
            scenario=load_scenario(scenario),
            symbols=tuple(s.strip() for s in symbols.split(",") if s.strip()),
            exchanges=tuple(e.strip() for e in exchanges.split(",") if e.strip()),
            start_us=parse_time(start, "--start"),
            duration_us=parse_duration(duration),
            seed=seed,
            scale=scale,
        )
        config = ConfigLoader().load(tier)
        with Progress(
            TextColumn("generating"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("generate", total=spec.duration_us)
            manifest = run(
                spec,
                config,
                out,
                overwrite=overwrite,
                origin=["coattail " + " ".join(sys.argv[1:])],
                progress=lambda done, _total: bar.update(task, completed=done),
            )
        rows = ", ".join(f"{n:,} {k}s" for k, n in manifest.rows.items())
        console.print(
            f"wrote {out}: {rows}, {len(manifest.labels)} labels ({manifest.scenario}, seed {seed})"
        )


def register(app: typer.Typer) -> None:
    """Attach ``coattail sim ...``."""
    group = typer.Typer(help="Synthetic market tapes with labelled scenarios.", no_args_is_help=True)
    group.command("generate")(generate)
    app.add_typer(group, name="sim")
