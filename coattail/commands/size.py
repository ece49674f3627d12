"""``coattail size TAPE --tier T``: does the tier's stream hold the tape's peak load, and what write rate
do its alerts need (``coattail.size``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from coattail.commands.stack import SetOption, TierOption, cli_errors, load_config
from coattail.size import (
    PARTITION_WCU,
    SHARD_IN_BYTES,
    SHARD_IN_RECORDS,
    SHARD_OUT_BYTES,
    SHARD_OUT_READS,
    Peak,
    SizeReport,
    StreamLoad,
)
from core.timefmt import format_us

console = Console()
TOO_HOT = "none (one key is too hot)"


def _at(peak: Peak | None) -> str:
    if peak is None or peak.second is None:
        return ""
    when = format_us(peak.second * 1_000_000, "seconds")
    return when if peak.shard is None else f"shard {peak.shard} at {when}"


def _verdict(value: float, limit: float) -> str:
    return "[green]fits[/]" if value <= limit else f"[red]OVER x{value / limit:.1f}[/]"


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:,.2f}"


def _measures(report: SizeReport, load: StreamLoad) -> list[tuple[float, Peak | None]]:
    """The four per-shard measures of one way of putting, in the order of ``stream_table``'s rows."""
    return [
        (load.records.value, load.records),
        (load.bytes.value, load.bytes),
        (load.bytes.value * report.consumers, load.bytes),
        (load.reads, None),
    ]


def stream_table(report: SizeReport) -> Table:
    """Per-shard peaks against Kinesis' limits, plain and aggregated."""
    title = (
        f"tier {report.tier}: {report.shards} shards, {report.events:,} events over {report.seconds:,} s at "
        f"speed {report.speed:g}, {report.consumers} consumer(s); hottest key {report.hottest_key}"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("per shard, busiest second")
    table.add_column("limit", justify="right")
    for name in ("plain", "KPL aggregated"):
        table.add_column(name, justify="right")
        table.add_column("")
    labels = ("records in /s", "bytes in /s", "bytes out /s", "GetRecords /s")
    limits = (SHARD_IN_RECORDS, SHARD_IN_BYTES, SHARD_OUT_BYTES, SHARD_OUT_READS)
    plain, aggregated = _measures(report, report.plain), _measures(report, report.aggregated)
    for label, limit, *ways in zip(labels, limits, plain, aggregated, strict=True):
        cells = [label, f"{limit:,}"]
        for value, peak in ways:
            cells += [_number(value), f"{_verdict(value, limit)} {_at(peak)}"]
        table.add_row(*cells)
    fewest = [str(report.min_shards_plain or TOO_HOT), str(report.min_shards_aggregated or TOO_HOT)]
    table.add_row("fewest shards for the writes", "", fewest[0], "", fewest[1], "")
    return table


def alerts_table(report: SizeReport) -> Table:
    """The DynamoDB write rate the tape's alerts need."""
    detectors = ", ".join(report.alert_detectors) or "no alerting detector"
    table = Table(title=f"DynamoDB alerts ({detectors}, by the reference)", title_justify="left")
    for column in ("measure", "value", ""):
        table.add_column(column)
    table.add_row("alerts in the tape", f"{report.alerts:,}", "")
    table.add_row("alerts /s, busiest second", _number(report.alerts_peak.value), _at(report.alerts_peak))
    indexes = f"{report.wcu_per_alert} WCU a put (table + {report.indexes} indexes)"
    table.add_row("largest item", f"{report.alert_item_bytes:,} B", indexes)
    table.add_row(
        "write units /s, busiest second", _number(report.alert_wcu), "on-demand table: no provisioning"
    )
    feed = f"{_verdict(report.feed_partition_wcu, PARTITION_WCU)} (limit {PARTITION_WCU:,} a partition)"
    table.add_row(
        "index over all alerts (one partition)", f"{_number(report.feed_partition_wcu)} WCU/s", feed
    )
    return table


def verdict(report: SizeReport) -> str:
    """One line: whether the tier holds the tape, with aggregation and without."""
    at = f"tier {report.tier} at speed {report.speed:g}"
    if not report.fits(report.aggregated):
        return f"verdict: {at} does NOT hold this tape, even with KPL aggregation"
    if report.feed_partition_wcu > PARTITION_WCU:
        return f"verdict: {at} does NOT hold this tape: the alerts' index partition needs more write units"
    plain = report.fits(report.plain)
    how = "with KPL aggregation, and also without" if plain else "with KPL aggregation only"
    return f"verdict: {at} holds this tape {how}"


def size(
    tape: Annotated[Path, typer.Argument(help="Tape directory (manifest.json + Parquet).")],
    tier: TierOption = "small",
    speed: Annotated[
        float, typer.Option("--speed", help="Replay speed (rates scale with it).", min=0.001)
    ] = 1.0,
    consumers: Annotated[
        int, typer.Option("--consumers", help="Applications reading every shard.", min=1)
    ] = 1,
    flush_ms: Annotated[
        int, typer.Option("--flush-ms", help="KPL buffering window (RecordMaxBufferedTime).", min=1)
    ] = 100,
    trigger_ms: Annotated[
        int | None,
        typer.Option(
            "--trigger-ms", help="How often a consumer polls a shard (default: the tier's trigger or 500)."
        ),
    ] = None,
    sets: SetOption = None,
) -> None:
    """Check the tier's Kinesis shards against the tape's peak per-second load (with and without KPL
    aggregation) and size the DynamoDB alert writes."""
    from coattail.size import measure
    from core.tape import Tape

    with cli_errors():
        opened = Tape.open(tape)
        config = load_config(tier, sets=sets)
        if not config.active_instruments:
            # as `coattail run` does: the tape's listed instruments take part in the asset stage
            listed = config.instruments.listed_names(opened.instruments())
            config = load_config(tier, sets=[*(sets or []), f"instruments=[{','.join(listed)}]"])
        columns = (
            TextColumn("reading the tape"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,} events"),
        )
        with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("size", total=sum(opened.manifest.rows.values()))
            report = measure(
                opened,
                config,
                speed=speed,
                consumers=consumers,
                flush_ms=flush_ms,
                trigger_ms=trigger_ms,
                progress=lambda n: bar.advance(task, n),
            )
        console.print(stream_table(report))
        console.print(alerts_table(report))
        console.print(verdict(report), highlight=False)


def register(app: typer.Typer) -> None:
    """Attach ``coattail size``."""
    app.command("size")(size)
