"""``coattail tape import | info | fetch | cache``: recorded files to tapes, what a tape holds, and
historical days fetched from the public exchange archives (cached and verified)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from coattail.commands.stack import cli_errors
from core.timefmt import US_PER, format_us

if TYPE_CHECKING:
    from replay.fetch import FetchRequest, FetchResult, FetchSettings, Remote
    from replay.readers import ImportResult

console = Console()

OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Replace an existing tape at --out.")]


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
    overwrite: OverwriteOption = False,
) -> None:
    """Import recorded market data into a tape."""
    with cli_errors():
        result = _import(paths, out, fmt=fmt, skip_bad=skip_bad, reject_path=reject, overwrite=overwrite)
        s = result.stats
        if s.skipped:
            console.print(
                "skipped messages: " + ", ".join(f"{k} {v:,}" for k, v in sorted(s.skipped.items()))
            )
        for note in s.notes:
            console.print(note)
        if skip_bad:
            console.print(f"bad lines: {s.bad:,}" + (f" (written to {result.reject_path})" if s.bad else ""))


def _import(paths: list[Path], out: Path, **options: Any) -> ImportResult:
    """``import_files`` with a progress bar (files done), then a one-line summary of the tape."""
    from replay.readers import import_files

    with Progress(
        TextColumn("importing"), BarColumn(), MofNCompleteColumn(), console=console, transient=True
    ) as bar:
        task = bar.add_task("import", total=len(paths))
        result = import_files(paths, out, progress=lambda _p: bar.advance(task), **options)
    m = result.manifest
    rows = ", ".join(f"{n:,} {k}s" for k, n in m.rows.items())
    console.print(f"wrote {out}: {rows} from {len(paths)} file(s) ({m.source})")
    return result


class FetchBar:
    """The progress of a fetch: bytes (with the rate) and files; safe to call from download threads."""

    def __init__(self, files: int) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[files]}"),
            console=console,
            transient=True,
        )
        self.files = files
        self.done = 0
        self.lock = threading.Lock()
        self.task = self.progress.add_task("fetching", total=0, files=f"0/{files} files")

    def add_bytes_total(self, n: int) -> None:
        """A download's size became known."""
        self.progress.update(self.task, total=(self.progress.tasks[self.task].total or 0) + n)

    def advance_bytes(self, n: int) -> None:
        """More bytes are on disk."""
        self.progress.advance(self.task, n)

    def file_done(self, remote: Remote, cached: bool) -> None:
        """One more file is in the cache."""
        with self.lock:
            self.done += 1
            self.progress.update(self.task, files=f"{self.done}/{self.files} files")


def fetch_into_tape(
    request: FetchRequest,
    settings: FetchSettings,
    out: Path | None,
    *,
    overwrite: bool = False,
    skip_missing: bool = False,
) -> FetchResult:
    """Fetch ``request`` with a progress bar, then (when ``out``) import it into the tape ``out``."""
    from replay.fetch import fetch, plan

    bar = FetchBar(len(plan(request, settings)))
    with bar.progress:
        result = fetch(request, settings, bar, skip_missing=skip_missing)
    mib = result.bytes_downloaded / 2**20
    console.print(
        f"{len(result.paths)} file(s): {len(result.downloaded)} downloaded ({mib:,.1f} MiB), "
        f"{len(result.cached)} from the cache {settings.cache_dir}"
    )
    for remote in result.missing:
        console.print(f"[yellow]not in the archive:[/yellow] {remote.symbol} {remote.kind} {remote.period}")
    if out is not None:
        _import(result.paths, out, overwrite=overwrite)
    return result


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (text or "").split(",") if p.strip())


CacheDirOption = Annotated[
    Path | None,
    typer.Option("--cache-dir", help="Cache directory (default $COATTAIL_FETCH__CACHE_DIR or ~/.cache/...)."),
]


def fetch_(
    source: Annotated[str, typer.Argument(help="binance or tardis.")],
    symbols: Annotated[str, typer.Option("--symbols", help="Comma-separated, e.g. BTCUSDT,ETHUSDT.")],
    first: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD.")],
    last: Annotated[str | None, typer.Option("--to", help="Last day, included (default: --from).")] = None,
    kinds: Annotated[
        str | None,
        typer.Option(
            "--kinds", help="binance: trades, aggTrades, bookTicker (usdm); tardis: trades, quotes."
        ),
    ] = None,
    market: Annotated[
        str, typer.Option("--market", help="spot or usdm (tardis: also any Tardis exchange id).")
    ] = "spot",
    out: Annotated[Path | None, typer.Option("--out", help="Tape directory to write.")] = None,
    no_import: Annotated[
        bool, typer.Option("--no-import", help="Only fill the cache; do not write a tape.")
    ] = False,
    monthly: Annotated[
        bool, typer.Option("--monthly", help="binance: one monthly file per whole calendar month.")
    ] = False,
    skip_missing: Annotated[
        bool, typer.Option("--skip-missing", help="Import what exists when some days are not published.")
    ] = False,
    overwrite: OverwriteOption = False,
    cache_dir: CacheDirOption = None,
    parallel: Annotated[
        int | None, typer.Option("--parallel", help="Downloads at a time (default 4).")
    ] = None,
) -> None:
    """Fetch days from a public exchange archive (cached, verified) and import them into a tape."""
    from core.errors import ConfigError
    from core.tape import MANIFEST
    from replay.fetch import FetchRequest, FetchSettings
    from replay.fetch.days import day_range, parse_day

    with cli_errors():
        if out is None and not no_import:
            raise typer.BadParameter("give --out DIR for the tape, or --no-import to only fill the cache")
        if out is not None and not no_import and (out / MANIFEST).exists() and not overwrite:
            # said before downloading, not after
            raise ConfigError(f"{out} already holds a tape; pass --overwrite or choose another --out")
        settings = FetchSettings.load(cache_dir=cache_dir, parallel=parallel)
        start = parse_day(first, "--from")
        request = FetchRequest(
            source=source.lower(),
            symbols=tuple(s.upper() for s in _split(symbols)),
            days=tuple(day_range(start, parse_day(last, "--to") if last else start)),
            kinds=_split(kinds),
            market=market,
            monthly=monthly,
        )
        fetch_into_tape(
            request, settings, None if no_import else out, overwrite=overwrite, skip_missing=skip_missing
        )


def day_tapes(specs: list[str], root: Path) -> list[Path]:
    """The tapes of ``coattail run --day`` specs under ``root``: made (fetched, imported) when missing."""
    from core.tape import MANIFEST
    from replay.fetch import FetchRequest, FetchSettings, parse_day_spec

    settings = FetchSettings.load()
    tapes = []
    for text in specs:
        spec = parse_day_spec(text)
        out = root / spec.slug
        if not (out / MANIFEST).is_file():
            request = FetchRequest(spec.source, spec.symbols, spec.days, market=spec.market)
            fetch_into_tape(request, settings, out, overwrite=True)
        tapes.append(out)
    return tapes


def cache_ls(cache_dir: CacheDirOption = None) -> None:
    """List the cached archive files."""
    from replay.fetch import Cache, FetchSettings

    with cli_errors():
        settings = FetchSettings.load(cache_dir=cache_dir)
        cache = Cache(settings.cache_dir, settings.cache_max_bytes)
        table = Table("source", "market", "symbol", "kind", "file", "MiB")
        entries = cache.entries()
        for e in entries:
            table.add_row(e.source, e.market, e.symbol, e.kind, e.filename, f"{e.size / 2**20:,.2f}")
        console.print(table)
        total, limit = sum(e.size for e in entries) / 2**20, settings.cache_max_bytes / 2**30
        console.print(f"{len(entries)} file(s), {total:,.1f} MiB of {limit:,.1f} GiB in {settings.cache_dir}")


def cache_rm(
    source: Annotated[str | None, typer.Option("--source", help="Only this source.")] = None,
    market: Annotated[str | None, typer.Option("--market", help="Only this market.")] = None,
    symbol: Annotated[str | None, typer.Option("--symbol", help="Only this symbol.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Only this kind.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Everything in the cache.")] = False,
    cache_dir: CacheDirOption = None,
) -> None:
    """Remove cached archive files (those matching every filter given)."""
    from replay.fetch import Cache, FetchSettings

    with cli_errors():
        wanted = {"source": source, "market": market, "symbol": symbol, "kind": kind}
        if not all_ and not any(wanted.values()):
            raise typer.BadParameter("say what to remove: --source, --market, --symbol, --kind, or --all")
        settings = FetchSettings.load(cache_dir=cache_dir)
        cache = Cache(settings.cache_dir, settings.cache_max_bytes)
        gone = [
            e
            for e in cache.entries()
            if all(v is None or getattr(e, k).lower() == v.lower() for k, v in wanted.items())
        ]
        freed = cache.remove(gone)
        console.print(f"removed {len(gone)} file(s), {freed / 2**20:,.1f} MiB")


def info(tape: Annotated[Path, typer.Argument(help="Tape directory.")]) -> None:
    """Print a tape's manifest and per-symbol statistics (transfers: per chain and asset, with the
    smallest and largest amount in the price columns)."""
    import polars as pl

    from coattail.bench.tapes import busiest
    from core.tape import Tape

    with cli_errors():
        t = Tape.open(tape)
        m = t.manifest
        console.print(
            f"[bold]{tape}[/bold]  source {m.source}, format {m.format_version}, {m.checksum[:23]}..."
        )
        console.print(f"span {format_us(m.start_us)} .. {format_us(m.end_us)}; rows {m.rows}")
        if m.rows:
            first, last, count = busiest(t, US_PER["h"])
            console.print(
                f"busiest hour {format_us(first)} .. {format_us(last)}: {count:,} events "
                f"(`coattail bench --busiest 1h` replays it)"
            )
        if m.scenario:
            console.print(f"scenario {m.scenario}, seed {m.seed}, {len(m.labels)} labels")
        table = Table(
            "kind", "exchange", "symbol", "rows", "first", "last", "price min", "price max", "notional"
        )
        for kind in m.kinds:
            values = {"trade": ["price", "qty"], "quote": ["bid_px", "ask_px"], "transfer": ["amount"]}[kind]
            where = ["chain", "asset"] if kind == "transfer" else ["exchange", "symbol"]
            stats: pl.DataFrame | None = None
            for batch in t.iter_batches(kind, columns=[*where, "ts_event", *values], batch_rows=1_000_000):
                df = pl.from_arrow(batch)
                assert isinstance(df, pl.DataFrame)
                df = df.rename(dict(zip(where, ("exchange", "symbol"), strict=True)))
                px = {
                    "trade": pl.col("price"), "quote": (pl.col("bid_px") + pl.col("ask_px")) / 2,
                    "transfer": pl.col("amount"),
                }[kind]
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
    group = typer.Typer(
        help="Tapes: import recorded data, fetch archive days, inspect a tape.", no_args_is_help=True
    )
    group.command("import")(import_)
    group.command("info")(info)
    group.command("fetch")(fetch_)
    cache = typer.Typer(help="The cache of fetched archive files.", no_args_is_help=True)
    cache.command("ls")(cache_ls)
    cache.command("rm")(cache_rm)
    group.add_typer(cache, name="cache")
    app.add_typer(group, name="tape")
