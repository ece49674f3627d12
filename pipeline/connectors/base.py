"""The exchange WebSocket connector: connect, subscribe, normalize, hand events to a sink; reconnect.

A backend names its URL, its subscription messages and its pure parse function
(``pipeline.connectors.binance`` / ``coinbase``); this base class owns the connection lifecycle. In
production the sink is a Kinesis producer; in the harness the URL points at the replay's local server.
"""

from __future__ import annotations

import asyncio
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from core.errors import CoattailError, SchemaError
from core.events import EventKind

Event = tuple[EventKind, dict[str, Any]]
Sink = Callable[[list[Event]], None]


class ConnectorError(CoattailError):
    """A connector could not (re)connect within its budget."""


class BaseConnector(ABC):
    """One WebSocket connection to one exchange, for a set of symbols."""

    exchange: str = ""

    def __init__(
        self,
        symbols: Sequence[str],
        sink: Sink,
        *,
        url: str | None = None,
        max_reconnects: int = 10,
        reconnect_delay_s: float = 0.2,
        on_bad_message: Callable[[str, str], None] | None = None,
    ) -> None:
        self.symbols = list(symbols)
        self.sink = sink
        self.url = url or self.default_url()
        self.max_reconnects = max_reconnects
        self.reconnect_delay_s = reconnect_delay_s
        self.on_bad_message = on_bad_message
        self.messages = 0
        self.events = 0
        self.bad_messages = 0
        self.reconnects = 0
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
        failures = 0
        while not stop.is_set():
            try:
                async with websockets.connect(self.url, max_size=None) as ws:
                    for message in self.subscribe_messages():
                        await ws.send(json.dumps(message))
                    self.connected.set()
                    failures = 0
                    await self._receive(ws, stop)
            except (ConnectionClosed, OSError, InvalidHandshake) as e:
                self.connected.clear()
                if stop.is_set():
                    return
                failures += 1
                if failures > self.max_reconnects:
                    raise ConnectorError(
                        f"{self.exchange} connector: {self.url} unreachable after {failures} attempts: {e}"
                    ) from e
                self.reconnects += 1
                await asyncio.sleep(self.reconnect_delay_s)

    async def _receive(self, ws: Any, stop: asyncio.Event) -> None:
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while True:
                receiver = asyncio.ensure_future(ws.recv())
                done, _ = await asyncio.wait({receiver, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if receiver not in done:
                    receiver.cancel()
                    return
                self.handle(receiver.result(), time.time_ns() // 1_000)
        finally:
            stopper.cancel()

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
        if events:
            self.events += len(events)
            self.sink(events)
