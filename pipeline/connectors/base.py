"""The exchange WebSocket connector: connect, subscribe, normalize, hand events to a sink; reconnect.

A backend names its URL, its subscription messages and its pure parse function
(``pipeline.connectors.binance`` / ``coinbase``); this base class owns the connection lifecycle. In
production the sink is a Kinesis producer; in the harness the URL points at the replay's local server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from core.errors import CoattailError, SchemaError
from core.events import EventKind
from pipeline.backoff import Backoff

Event = tuple[EventKind, dict[str, Any]]
CLOSE_TIMEOUT_S: Final = 10.0
Sink = Callable[[list[Event]], None]


class ConnectorError(CoattailError):
    """A connector could not (re)connect within its budget."""


@dataclass(frozen=True)
class Gap:
    """Trade ids missing between two consecutive trades of one symbol (a data-quality event).

    The pipeline's MOD-004 counts the same gap as ``TRADE_ID_GAP`` from the stream itself; the
    connector reports it where it happened, and whether a reconnect preceded it.
    """

    exchange: str
    symbol: str
    last_id: int
    next_id: int
    after_reconnect: bool

    @property
    def missing(self) -> int:
        """How many trade ids never arrived."""
        return self.next_id - self.last_id - 1


class BaseConnector(ABC):
    """One WebSocket connection to one exchange, for a set of symbols.

    Reconnects after a lost connection with exponential backoff and full jitter (``pipeline.backoff``),
    at most ``max_reconnects`` consecutive failures (None: forever), and resubscribes on every connect.
    Pings every ``ping_interval_s`` and drops a connection whose pong is later than ``ping_timeout_s``
    (None: no pings). Trade-id gaps per symbol are counted and reported to ``on_gap``.
    """

    exchange: str = ""

    def __init__(
        self,
        symbols: Sequence[str],
        sink: Sink,
        *,
        url: str | None = None,
        max_reconnects: int | None = 10,
        reconnect_base_s: float = 0.2,
        reconnect_max_s: float = 30.0,
        ping_interval_s: float | None = 20.0,
        ping_timeout_s: float | None = 20.0,
        rng: random.Random | None = None,
        on_bad_message: Callable[[str, str], None] | None = None,
        on_gap: Callable[[Gap], None] | None = None,
    ) -> None:
        self.symbols = list(symbols)
        self.sink = sink
        self.url = url or self.default_url()
        self.max_reconnects = max_reconnects
        self.backoff = Backoff(reconnect_base_s, reconnect_max_s, rng)
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.on_bad_message = on_bad_message
        self.on_gap = on_gap
        self.messages = 0
        self.events = 0
        self.bad_messages = 0
        self.reconnects = 0
        self.disconnects = 0
        """Connections that ended (by the server, the network or a missed pong)."""
        self.gaps = 0
        self.missing_trades = 0
        self._last_trade_id: dict[str, int] = {}
        self._reconnected: set[str] = set()
        self.connected = asyncio.Event()

    @abstractmethod
    def default_url(self) -> str:
        """The exchange's production endpoint for ``self.symbols``."""

    def subscribe_messages(self) -> list[dict[str, Any]]:
        """Messages to send right after connecting (none when the URL itself subscribes)."""
        return []

    @abstractmethod
    def parse(self, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        """Normalize one decoded message (the exchange's pure parse function)."""

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Receive until ``stop`` is set; reconnect after a lost connection, within the budget."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                async with websockets.connect(
                    self.url,
                    max_size=None,
                    ping_interval=self.ping_interval_s,
                    ping_timeout=self.ping_timeout_s,
                    # a feed that missed its pong will not acknowledge the close either
                    close_timeout=self.ping_timeout_s or CLOSE_TIMEOUT_S,
                ) as ws:
                    for message in self.subscribe_messages():
                        await ws.send(json.dumps(message))
                    self.connected.set()
                    self.backoff.reset()
                    try:
                        await self._receive(ws, stop)
                    finally:
                        self._emit(self.release())  # nothing received stays behind a connection
                    if stop.is_set():
                        return
                    raise ConnectionError(f"{self.url} closed the connection")
            except (ConnectionClosed, OSError, InvalidHandshake, TimeoutError) as e:
                if self.connected.is_set():
                    self.disconnects += 1
                    self._reconnected = set(self.symbols)
                self.connected.clear()
                if stop.is_set():
                    return
                if self.max_reconnects is not None and self.backoff.failures >= self.max_reconnects:
                    raise ConnectorError(
                        f"{self.exchange} connector: {self.url} unreachable after "
                        f"{self.backoff.failures + 1} attempts: {e}; check the URL (config/producer.yaml "
                        "or --ws-url) and the network"
                    ) from e
                self.reconnects += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.backoff.next_delay_s())

    async def _receive(self, ws: Any, stop: asyncio.Event) -> None:
        """Handle messages until the connection ends (a clean close returns, others raise) or ``stop``."""

        async def close_on_stop() -> None:
            await stop.wait()
            await ws.close()

        closer = asyncio.ensure_future(close_on_stop())
        try:
            # one iteration per message: no task per receive, which would cost more than the parsing
            async for raw in ws:
                self.handle(raw, time.time_ns() // 1_000)
        finally:
            closer.cancel()

    def handle(self, raw: str | bytes, ts_recv: int) -> None:
        """Decode, normalize and sink one message; a bad message is counted and reported, never fatal."""
        self.messages += 1
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        try:
            msg = json.loads(raw)
            if not isinstance(msg, dict):
                raise SchemaError("message is not a JSON object")
            events = self.parse(msg, ts_recv)
        except (ValueError, SchemaError) as e:
            self.bad_messages += 1
            if self.on_bad_message is not None:
                self.on_bad_message(text, str(e))
            return
        self._emit(events)

    def release(self) -> list[Event]:
        """Events a backend held back (it had no exchange time for them yet); called when a connection
        ends, so that what was received is passed on."""
        return []

    def _emit(self, events: list[Event]) -> None:
        if events:
            self._check_gaps(events)
            self.events += len(events)
            self.sink(events)

    def _check_gaps(self, events: list[Event]) -> None:
        for kind, event in events:
            if kind != "trade":
                continue
            symbol, trade_id = event["symbol"], event["trade_id"]
            last = self._last_trade_id.get(symbol)
            after_reconnect = symbol in self._reconnected
            self._reconnected.discard(symbol)
            if last is not None and trade_id > last + 1:
                gap = Gap(self.exchange, symbol, last, trade_id, after_reconnect)
                self.gaps += 1
                self.missing_trades += gap.missing
                if self.on_gap is not None:
                    self.on_gap(gap)
            if last is None or trade_id > last:
                self._last_trade_id[symbol] = trade_id
