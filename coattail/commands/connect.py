"""``coattail connect --exchanges binance,coinbase --symbols ... [--ws-url EXCHANGE=URL]``: the producer."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live

from coattail.commands.stack import SetOption, TierOption, cli_errors, load_config
from core.errors import ConfigError
from core.timefmt import parse_duration
from pipeline.connectors.base import Gap
from pipeline.producer.manager import Producer

err_console = Console(stderr=True)
STATUS_EVERY_S = 1.0


def parse_subscriptions(exchanges: str, symbols: str) -> dict[str, list[str]]:
    """``--exchanges a,b`` and ``--symbols S1,EX:S2``: a plain symbol goes to every exchange named, an
    ``EXCHANGE:SYMBOL`` to that exchange only."""
    names = [e.strip() for e in exchanges.split(",") if e.strip()]
    if not names:
        raise ConfigError("--exchanges: name at least one, e.g. --exchanges binance,coinbase")
    out: dict[str, list[str]] = {name: [] for name in names}
    for item in (s.strip() for s in symbols.split(",")):
        if not item:
            continue
        exchange, sep, symbol = item.rpartition(":")
        if not sep:
            for name in names:
                out[name].append(symbol)
        elif exchange in out:
            out[exchange].append(symbol)
        else:
            raise ConfigError(f"--symbols {item!r}: {exchange!r} is not among --exchanges {exchanges!r}")
    empty = [name for name, syms in out.items() if not syms]
    if empty:
        raise ConfigError(
            f"--symbols names nothing for {', '.join(empty)} (use EXCHANGE:SYMBOL or a plain SYMBOL)"
        )
    return out


def connect(
    exchanges: Annotated[
        str, typer.Option("--exchanges", help="Comma-separated: binance, binance-futures, coinbase.")
    ],
    symbols: Annotated[
        str,
        typer.Option(
            "--symbols",
            help="Comma-separated; SYMBOL for every exchange or EXCHANGE:SYMBOL (BTCUSDT,coinbase:BTC-USD).",
        ),
    ],
    ws_urls: Annotated[
        list[str] | None,
        typer.Option("--ws-url", help="EXCHANGE=URL replacing config/producer.yaml's endpoint (repeatable)."),
    ] = None,
    producer_config: Annotated[
        Path | None, typer.Option("--producer-config", help="Another producer.yaml.")
    ] = None,
    run_for: Annotated[
        str | None,
        typer.Option("--for", help="Stop after this long (30s, 5m); default: until SIGTERM/Ctrl-C."),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the reconnect jitter.")] = None,
    tier: TierOption = "small",
    sets: SetOption = None,
) -> None:
    """Run the exchange connectors and put their events on the running stack's Kinesis stream."""
    from infra.resolve import find_stack
    from pipeline.producer.settings import load_producer_settings, parse_ws_urls

    with cli_errors():
        config = load_config(tier, sets=sets)
        settings = load_producer_settings(producer_config).with_urls(parse_ws_urls(ws_urls or []))
        subscriptions = parse_subscriptions(exchanges, symbols)
        runtime = find_stack(config.runtime).runtime
        producer = Producer(
            settings, runtime, config.kinesis.stream, subscriptions, seed=seed, on_gap=_print_gap
        )
        duration_s = parse_duration(run_for) / 1e6 if run_for is not None else None
        for exchange, connector in zip(subscriptions, producer.connectors, strict=True):
            err_console.print(f"{exchange}: {connector.url}", highlight=False)
        err_console.print(
            f"-> Kinesis stream {config.kinesis.stream!r} at {runtime.aws_endpoint}", highlight=False
        )
        asyncio.run(_serve(producer, duration_s))
        err_console.print(f"stopped: {producer.stats().line()}", highlight=False)


async def _serve(producer: Producer, duration_s: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if duration_s is not None:
        loop.call_later(duration_s, stop.set)
    run = asyncio.ensure_future(producer.run(stop))
    with Live(producer.stats().line(), console=err_console, refresh_per_second=2, transient=True) as live:
        while not run.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(run), STATUS_EVERY_S)
            live.update(producer.stats().line())
    await run


def _print_gap(gap: Gap) -> None:
    when = " after a reconnect" if gap.after_reconnect else ""
    err_console.print(
        f"[yellow]gap[/yellow] {gap.exchange}:{gap.symbol}: {gap.missing:,} trade ids missing between "
        f"{gap.last_id} and {gap.next_id}{when}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Attach ``coattail connect``."""
    app.command("connect")(connect)
