"""``coattail tape import | info``: recorded files to tapes, and what a tape holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from coattail.commands.stack import cli_errors
from core.timefmt import format_us

console = Console()


def import_(
    paths: Annotated[list[Path], typer.Argument(help="Input files (CSV, zip, WebSocket captures).")],
    out: Annotated[Path, typer.Option("--out", help="Tape directory to write.")],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", help="binance-csv, binance-ws, coinbase-ws or tardis-csv (detected if omitted)."
        ),
    ] = None,
    skip_bad: Annotated[
        bool,
        typer.Option(
            "--skip-bad", help="Count bad lines and write them to a reject file instead of failing."
        ),
    ] = False,
    reject: Annotated[
        Path | None, typer.Option("--reject", help="Reject file (default: <out>.rejects.txt).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing tape at --out.")
    ] = False,
) -> None:
    """Import recorded market data into a tape."""
    from replay.readers import import_files

    with cli_errors():
        with Progress(
            TextColumn("importing"), BarColumn(), MofNCompleteColumn(), console=console, transient=True
        ) as bar:
            task = bar.add_task("import", total=len(paths))
            result = import_files(
                paths,
                out,
                fmt=fmt,
                skip_bad=skip_bad,
                reject_path=reject,
                overwrite=overwrite,
                progress=lambda _p: bar.advance(task),
            )
        m, s = result.manifest, result.stats
        rows = ", ".join(f"{n:,} {k}s" for k, n in m.rows.items())
        console.print(f"wrote {out}: {rows} from {len(paths)} file(s) ({m.source})")
        if s.skipped:
            console.print(
                "skipped messages: " + ", ".join(f"{k} {v:,}" for k, v in sorted(s.skipped.items()))
            )
        for note in s.notes:
            console.print(note)
        if skip_bad:
            console.print(f"bad lines: {s.bad:,}" + (f" (written to {result.reject_path})" if s.bad else ""))


def info(tape: Annotated[Path, typer.Argument(help="Tape directory.")]) -> None:
    """Print a tape's manifest and per-symbol statistics."""
    import polars as pl

    from core.tape import Tape

    with cli_errors():
        t = Tape.open(tape)
        m = t.manifest
        console.print(
            f"[bold]{tape}[/bold]  source {m.source}, format {m.format_version}, {m.checksum[:23]}..."
        )
        console.print(f"span {format_us(m.start_us)} .. {format_us(m.end_us)}; rows {m.rows}")
        if m.scenario:
            console.print(f"scenario {m.scenario}, seed {m.seed}, {len(m.labels)} labels")
        table = Table(
            "kind", "exchange", "symbol", "rows", "first", "last", "price min", "price max", "notional"
        )
        for kind in m.kinds:
            cols = ["exchange", "symbol", "ts_event"] + (
                ["price", "qty"] if kind == "trade" else ["bid_px", "ask_px"]
            )
            stats: pl.DataFrame | None = None
            for batch in t.iter_batches(kind, columns=cols, batch_rows=1_000_000):
                df = pl.from_arrow(batch)
                assert isinstance(df, pl.DataFrame)
                px = pl.col("price") if kind == "trade" else (pl.col("bid_px") + pl.col("ask_px")) / 2
                notional = (pl.col("price") * pl.col("qty")).sum() if kind == "trade" else pl.lit(0.0)
                part = df.group_by("exchange", "symbol").agg(
                    pl.len().alias("rows"),
                    pl.col("ts_event").min().alias("first"),
                    pl.col("ts_event").max().alias("last"),
                    px.min().alias("lo"),
                    px.max().alias("hi"),
                    notional.alias("notional"),
                )
                stats = part if stats is None else pl.concat([stats, part])
            if stats is None:
                continue
            stats = (
                stats.group_by("exchange", "symbol")
                .agg(
                    pl.col("rows").sum(),
                    pl.col("first").min(),
                    pl.col("last").max(),
                    pl.col("lo").min(),
                    pl.col("hi").max(),
                    pl.col("notional").sum(),
                )
                .sort("exchange", "symbol")
            )
            for r in stats.iter_rows(named=True):
                table.add_row(
                    kind,
                    r["exchange"],
                    r["symbol"],
                    f"{r['rows']:,}",
                    format_us(r["first"]),
                    format_us(r["last"]),
                    f"{r['lo']:.6g}",
                    f"{r['hi']:.6g}",
                    f"{r['notional']:,.0f}" if kind == "trade" else "",
                )
        console.print(table)
        for label in m.labels:
            what = label.reason or label.detector
            console.print(
                f"label {label.kind:<15} {label.detector} {label.expect:<5} {what:<18} "
                f"{label.exchange}:{label.symbol} {format_us(label.start_us)} {label.note}",
                highlight=False,
            )
        if m.faults:
            console.print(f"faults: { {k: len(v) for k, v in m.faults.items()} }")
        if m.extra.get("import"):
            console.print(f"import: {m.extra['import']}")


def register(app: typer.Typer) -> None:
    """Attach ``coattail tape ...``."""
    group = typer.Typer(help="Tapes: import recorded data, inspect a tape.", no_args_is_help=True)
    group.command("import")(import_)
    group.command("info")(info)
    app.add_typer(group, name="tape")
