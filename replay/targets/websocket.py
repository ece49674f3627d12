"""An exchange-compatible WebSocket server on 127.0.0.1: any Binance or Coinbase client works against it
with only its base URL changed.

One port, one base URL per exchange and market (``WebSocketTarget.endpoint``):

- ``ws://127.0.0.1:PORT/binance`` for Binance spot (production ``wss://stream.binance.com:9443``) and
  ``ws://127.0.0.1:PORT/binance-futures`` for USD-M futures (``wss://fstream.binance.com``; its routed
  ``/public`` and ``/market`` prefixes are accepted and serve every stream). Raw streams at
  ``/ws/<stream>`` and ``/ws``, combined streams at ``/stream?streams=a/b`` and ``/stream``;
  ``SUBSCRIBE``, ``UNSUBSCRIBE``, ``LIST_SUBSCRIPTIONS``, ``SET_PROPERTY`` / ``GET_PROPERTY``
  (``combined``) with ``{"result": ..., "id": N}`` replies and the documented ``{"code", "msg"}``
  errors. Streams served: ``<symbol>@trade`` and ``<symbol>@bookTicker``; other well-formed stream names
  are accepted and stay silent. The server pings every 20 s (futures: 180 s) and drops a connection
  whose pong does not come within 60 s (futures: 600 s); it answers client pings with pongs.
- ``ws://127.0.0.1:PORT/coinbase`` for the Coinbase Exchange feed (``wss://ws-feed.exchange.coinbase.com``):
  ``subscribe`` / ``unsubscribe`` with ``product_ids`` and ``channels`` (names or ``{"name",
  "product_ids"}``), answered by ``subscriptions``; channels ``matches`` (a ``last_match`` first, when
  the product has traded), ``ticker`` (one per quote) and ``heartbeat`` (one per product for every second
  of replayed time); ``error`` messages for bad requests.

Requests are handled by ``replay.targets.ws_protocol``, messages built by ``replay.exchange_messages``;
each exchange and market gets only its own events.
The end of the replay (``close``) ends every connection as an exchange's maintenance does: Binance spot
clients first get a ``serverShutdown`` event (``{"e":"serverShutdown","E":...}``, unwrapped, at the last
replayed time), then every connection is closed with code 1001 (going away); clients reconnect and find
the server gone. Requests are bounded to ``MAX_REQUEST_BYTES``. A corrupt row is sent as its corrupt
bytes in a binary frame.

Threads: the replay thread builds the frames; subscriptions are created, changed and read only on the
server's event loop, and the subscriber count the replay thread waits on is kept under a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

import pyarrow as pa
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from core.errors import ReplayError
from core.events import EVENT_KINDS
from replay import exchange_messages as em
from replay import wire
from replay.faults import Disturbance
from replay.merge import KIND_CODE
from replay.targets.base import Target
from replay.targets.ws_protocol import VENUES, Session, binance_reply, coinbase_request, route

MAX_REQUEST_BYTES: Final = 64 * 1024
"""Largest message a client may send: 1,024 Binance stream names fit with room to spare."""

KEEPALIVE: Final[dict[str, tuple[float, float]]] = {em.SPOT: (20.0, 60.0), em.FUTURES: (180.0, 600.0)}
"""Binance ping interval and pong deadline in seconds, per the spot and USD-M documentation."""

GOING_AWAY: Final = 1001


@dataclass(frozen=True)
class _Frame:
    """One event for one venue: the topic it belongs to and its raw and combined-stream forms."""

    venue: str
    topic: str
    raw: str | bytes
    combined: str | bytes


class WebSocketTarget(Target):
    """Serves the replayed events to exchange clients over WebSocket (see the module docstring)."""

    name = "ws"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        wait_for_clients: int = 0,
        client_timeout_s: float = 30.0,
        keepalive: dict[str, tuple[float, float]] | None = None,
    ) -> None:
        super().__init__()
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ReplayError(f"the WebSocket target binds loopback only, not {host!r}")
        if wait_for_clients < 0 or client_timeout_s <= 0:
            raise ReplayError("wait for 0 or more clients, with a timeout above 0 s")
        self.host = host
        self.port = port
        self.wait_for_clients = wait_for_clients
        self.client_timeout_s = client_timeout_s
        self.keepalive = {**KEEPALIVE, **(keepalive or {})}
        self.skipped = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="replay-ws", daemon=True)
        self._server: Server | None = None
        self._sessions: dict[ServerConnection, Session] = {}
        self._last_match: dict[str, dict[str, Any]] = {}
        self._coinbase = em.CoinbaseFeed()
        self._heartbeats_wanted = False
        self._clock_s: int | None = None
        self._last_ts_us = 0
        self._subscribed = threading.Condition()
        self._clients = 0

    @property
    def url(self) -> str:
        """The server's root URL (``ws://127.0.0.1:PORT``); clients use ``endpoint(venue)``."""
        return f"ws://{self.host}:{self.port}"

    def endpoint(self, venue: str) -> str:
        """The base URL replacing the production one for ``binance``, ``binance-futures`` or ``coinbase``."""
        if venue not in VENUES:
            raise ReplayError(f"no WebSocket endpoint for {venue!r}; choose one of {', '.join(VENUES)}")
        return f"{self.url}/{venue}"

    def start(self) -> None:
        """Start serving (idempotent): the URL is known from here on."""
        if self._server is None:
            if not self._thread.is_alive():
                self._thread.start()
            self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result()

    def open(self) -> None:
        self.start()
        if self.wait_for_clients:
            self.await_clients(self.wait_for_clients)

    async def _start(self) -> Server:
        server = await serve(
            self._handler,
            self.host,
            self.port,
            max_size=MAX_REQUEST_BYTES,
            ping_interval=None,  # each venue keeps its own documented keepalive
            process_request=self._check_path,
        )
        self.port = next(iter(server.sockets)).getsockname()[1]
        return server

    def _check_path(self, connection: ServerConnection, request: Request) -> Response | None:
        if route(request.path) is not None:
            return None
        body = (
            f"nothing is served at {request.path}; use {self.url}/binance, {self.url}/binance-futures "
            f"(then /ws, /ws/<stream> or /stream?streams=...) or {self.url}/coinbase\n"
        )
        return Response(
            HTTPStatus.NOT_FOUND.value, "Not Found", Headers({"Content-Type": "text/plain"}), body.encode()
        )

    def clients(self) -> int:
        """Connections that have subscribed to something."""
        with self._subscribed:
            return self._clients

    def await_clients(self, n: int) -> None:
        """Block until ``n`` clients have subscribed; a ``ReplayError`` after the timeout."""
        with self._subscribed:
            if not self._subscribed.wait_for(lambda: self._clients >= n, timeout=self.client_timeout_s):
                raise ReplayError(
                    f"{self._clients} of {n} WebSocket clients subscribed at {self.url} within "
                    f"{self.client_timeout_s:.0f} s; point the clients at {self.url}/<exchange> "
                    "or raise the timeout"
                )

    def _recount(self) -> None:
        """Publish the subscriber count to waiting threads (called on the loop after every change)."""
        count = sum(1 for s in self._sessions.values() if s.topics)
        heartbeats = any(t.startswith("heartbeat:") for s in self._sessions.values() for t in s.topics)
        with self._subscribed:
            self._clients = count
            self._heartbeats_wanted = heartbeats
            self._subscribed.notify_all()

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None  # process_request ran on it
        routed = route(ws.request.path)
        assert routed is not None
        venue, combined, streams = routed
        session = Session(ws, venue, combined, dict.fromkeys(streams))
        self._sessions[ws] = session
        self._recount()
        keepalive = (
            asyncio.ensure_future(self._keepalive(ws, *self.keepalive[venue]))
            if venue in self.keepalive
            else None
        )
        try:
            async for text in ws:
                if venue == em.COINBASE:
                    reply, fresh = coinbase_request(session, text)
                    await ws.send(json.dumps(reply, separators=(",", ":")))
                    for product in fresh:
                        if product in self._last_match:
                            await ws.send(json.dumps(em.as_last_match(self._last_match[product])))
                else:
                    await ws.send(json.dumps(binance_reply(session, text), separators=(",", ":")))
                self._recount()
        except ConnectionClosed:
            pass
        finally:
            if keepalive is not None:
                keepalive.cancel()
            self._sessions.pop(ws, None)
            self._recount()

    @staticmethod
    async def _keepalive(ws: ServerConnection, interval_s: float, deadline_s: float) -> None:
        """Ping every ``interval_s``; close the connection when a pong is later than ``deadline_s``."""
        try:
            while True:
                await asyncio.sleep(interval_s)
                pong = await ws.ping()
                try:
                    await asyncio.wait_for(pong, deadline_s)
                except TimeoutError:
                    await ws.close(1008, "no pong within the deadline")
                    return
        except ConnectionClosed:
            return

    def _send(self, table: pa.Table, ts_sent: int) -> None:
        corrupt = set(wire.corrupt_rows(table).tolist())
        bad = iter(wire.encode(table.take(pa.array(sorted(corrupt))), ts_sent) if corrupt else [])
        frames: list[_Frame] = []
        matches: dict[str, dict[str, Any]] = {}
        for i, row in enumerate(table.to_pylist()):
            if row["kind"] == KIND_CODE["transfer"]:
                continue  # an exchange's WebSocket carries no on-chain transfers (they come via Kinesis)
            kind = EVENT_KINDS[row["kind"]]
            exchange = row["exchange"]
            self._tick(row["ts_event"], frames)
            broken = next(bad) if i in corrupt else None
            if exchange in (em.SPOT, em.FUTURES):
                stream, raw = (em.binance_trade if kind == "trade" else em.binance_book_ticker)(row)
                if broken is not None:
                    frames.append(_Frame(exchange, stream, broken, broken))
                else:
                    frames.append(_Frame(exchange, stream, raw, f'{{"stream":"{stream}","data":{raw}}}'))
            elif exchange == em.COINBASE:
                product = row["symbol"]
                if kind == "trade":
                    msg, channel = self._coinbase.match(row), "matches"
                    matches[product] = msg
                else:
                    msg, channel = self._coinbase.ticker(row), "ticker"
                text = json.dumps(msg, separators=(",", ":")) if broken is None else broken
                frames.append(_Frame(exchange, f"{channel}:{product}", text, text))
            else:
                self.skipped += 1
        asyncio.run_coroutine_threadsafe(self._deliver(frames, matches), self._loop).result()

    def _tick(self, ts_us: int, frames: list[_Frame]) -> None:
        """Coinbase heartbeats for every whole second of replayed time up to ``ts_us``."""
        self._last_ts_us = max(self._last_ts_us, ts_us)
        second = ts_us // 1_000_000
        if self._clock_s is None or not self._heartbeats_wanted:
            self._clock_s = second
            return
        for s in range(self._clock_s + 1, second + 1):
            for product in self._coinbase.products:
                beat = json.dumps(self._coinbase.heartbeat(product, s * 1_000_000), separators=(",", ":"))
                frames.append(_Frame(em.COINBASE, f"heartbeat:{product}", beat, beat))
        self._clock_s = max(self._clock_s, second)

    async def _deliver(self, frames: Iterable[_Frame], matches: dict[str, dict[str, Any]]) -> None:
        for frame in frames:
            for ws, session in list(self._sessions.items()):
                if session.venue == frame.venue and frame.topic in session.topics:
                    try:
                        await ws.send(frame.combined if session.combined else frame.raw)
                    except ConnectionClosed:
                        self._sessions.pop(ws, None)
        self._last_match.update(matches)
        self._recount()

    def _disturb(self, disturbance: Disturbance) -> bool:
        if disturbance.kind != "disconnect":
            return False
        before = self.clients()
        asyncio.run_coroutine_threadsafe(
            self._drop_all(1012, "replay: injected disconnect"), self._loop
        ).result()
        if before:
            asyncio.run_coroutine_threadsafe(asyncio.sleep(disturbance.pause_ms / 1e3), self._loop).result()
            self.await_clients(before)  # nothing is sent while the connectors reconnect
        return True

    async def _drop_all(self, code: int, reason: str) -> None:
        sessions = list(self._sessions.values())
        self._sessions.clear()
        self._recount()
        await asyncio.gather(
            *(s.ws.close(code=code, reason=reason) for s in sessions), return_exceptions=True
        )

    async def _drained(self) -> None:
        """Until every connection has handed its queued frames to the kernel (slow readers catch up)."""
        while any(
            s.ws.transport is not None and s.ws.transport.get_write_buffer_size()
            for s in self._sessions.values()
        ):
            await asyncio.sleep(0.01)

    async def _shutdown(self) -> None:
        """The maintenance close: ``serverShutdown`` to Binance spot clients, then 1001 to everyone."""
        with contextlib.suppress(TimeoutError):  # a client that stopped reading must not hold the end
            await asyncio.wait_for(self._drained(), self.client_timeout_s)
        notice = em.binance_server_shutdown(self._last_ts_us)
        for session in list(self._sessions.values()):
            if session.venue == em.SPOT:
                try:
                    await session.ws.send(notice)
                except ConnectionClosed:
                    continue
        await self._drop_all(GOING_AWAY, "replay: end of tape (maintenance)")

    def close(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result()
            self._server.close()
            asyncio.run_coroutine_threadsafe(self._server.wait_closed(), self._loop).result(timeout=5)
            self._server = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
