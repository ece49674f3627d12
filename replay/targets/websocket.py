"""An exchange-compatible WebSocket server on 127.0.0.1: production connectors connect to it unchanged.

- Binance combined streams: ``/stream?streams=btcusdt@trade/btcusdt@bookTicker`` (``binance`` and
  ``binance-futures`` events). Payloads are Binance's: ``trade`` ``{"e","E","s","t","p","q","T","m","M"}``
  (futures: ``"X"`` instead of ``"M"``), spot ``bookTicker`` ``{"u","s","b","B","a","A"}`` (no time, as on
  Binance), futures ``bookTicker`` adding ``"e","T","E"``; each wrapped as ``{"stream", "data"}``.
- Coinbase Exchange: any other path; the client sends ``{"type":"subscribe","product_ids":[...],
  "channels":["matches"]}``, the server answers ``subscriptions`` and then sends ``match`` messages
  (``side`` is the maker's side). Coinbase quotes have no equivalent here and are counted as skipped.

Times: Binance messages carry milliseconds, Coinbase ``time`` microseconds (ISO-8601). A corrupt row is
sent as its corrupt bytes in a binary frame.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qs, urlparse

import pyarrow as pa
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from core.errors import ReplayError
from core.events import EVENT_KINDS
from replay import wire
from replay.faults import Disturbance
from replay.targets.base import Target

BINANCE_EXCHANGES: Final = ("binance", "binance-futures")
COINBASE: Final = "coinbase"


def binance_message(kind: str, row: dict[str, Any], ts_sent: int) -> tuple[str, dict[str, Any]]:
    """The combined-stream name and payload Binance would send for one event."""
    futures = row["exchange"] == "binance-futures"
    symbol = row["symbol"]
    if kind == "trade":
        data: dict[str, Any] = {
            "e": "trade",
            "E": ts_sent // 1000,
            "s": symbol,
            "t": row["trade_id"],
            "p": repr(row["price"]),
            "q": repr(row["qty"]),
            "T": row["ts_event"] // 1000,
            "m": row["side"] == "sell",  # the buyer was the maker when the taker sold
        }
        data.update({"X": "MARKET"} if futures else {"M": True})
        return f"{symbol.lower()}@trade", data
    data = {
        "u": row["update_id"],
        "s": symbol,
        "b": repr(row["bid_px"]),
        "B": repr(row["bid_qty"]),
        "a": repr(row["ask_px"]),
        "A": repr(row["ask_qty"]),
    }
    if futures:
        data = {"e": "bookTicker", **data, "T": row["ts_event"] // 1000, "E": ts_sent // 1000}
    return f"{symbol.lower()}@bookTicker", data


def coinbase_match(row: dict[str, Any], sequence: int) -> dict[str, Any]:
    """The ``match`` message Coinbase would send for one trade."""
    ts = datetime.fromtimestamp(row["ts_event"] // 1_000_000, tz=UTC)
    time = ts.strftime("%Y-%m-%dT%H:%M:%S") + f".{row['ts_event'] % 1_000_000:06d}Z"
    return {
        "type": "match",
        "trade_id": row["trade_id"],
        "maker_order_id": str(uuid.UUID(int=(row["trade_id"] << 1) & (2**128 - 1))),
        "taker_order_id": str(uuid.UUID(int=((row["trade_id"] << 1) | 1) & (2**128 - 1))),
        "side": "sell" if row["side"] == "buy" else "buy",  # the maker's side
        "size": repr(row["qty"]),
        "price": repr(row["price"]),
        "product_id": row["symbol"],
        "sequence": sequence,
        "time": time,
    }


class WebSocketTarget(Target):
    """Serves the replayed events to exchange connectors over WebSocket."""

    name = "ws"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        wait_for_clients: int = 0,
        client_timeout_s: float = 30.0,
    ) -> None:
        super().__init__()
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ReplayError(f"the WebSocket target binds loopback only, not {host!r}")
        self.host = host
        self.port = port
        self.wait_for_clients = wait_for_clients
        self.client_timeout_s = client_timeout_s
        self.skipped = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="replay-ws", daemon=True)
        self._server: Server | None = None
        self._binance: dict[ServerConnection, set[str]] = {}
        self._coinbase: dict[ServerConnection, set[str]] = {}
        self._sequence: dict[str, int] = defaultdict(int)
        self._subscribed = threading.Condition()

    @property
    def url(self) -> str:
        """The server's base URL (``ws://127.0.0.1:PORT``)."""
        return f"ws://{self.host}:{self.port}"

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
        server = await serve(self._handler, self.host, self.port, max_size=None)
        self.port = next(iter(server.sockets)).getsockname()[1]
        return server

    def clients(self) -> int:
        """Connections that have subscribed to something."""
        return sum(1 for s in self._binance.values() if s) + sum(1 for s in self._coinbase.values() if s)

    def await_clients(self, n: int) -> None:
        """Block until ``n`` clients have subscribed; a ``ReplayError`` after the timeout."""
        with self._subscribed:
            if not self._subscribed.wait_for(lambda: self.clients() >= n, timeout=self.client_timeout_s):
                raise ReplayError(
                    f"no WebSocket client subscribed at {self.url} within {self.client_timeout_s:.0f} s "
                    f"({self.clients()} of {n}); start the connectors against this URL"
                )

    async def _handler(self, ws: ServerConnection) -> None:
        request = ws.request
        path = request.path if request is not None else "/"
        parsed = urlparse(path)
        try:
            if parsed.path.rstrip("/") == "/stream":
                streams = parse_qs(parsed.query).get("streams", [""])[0]
                self._register(self._binance, ws, {s for s in streams.split("/") if s})
                await ws.wait_closed()
            else:
                self._coinbase[ws] = set()
                async for raw in ws:
                    msg = json.loads(raw)
                    if msg.get("type") == "subscribe":
                        products = set(msg.get("product_ids", []))
                        await ws.send(
                            json.dumps(
                                {
                                    "type": "subscriptions",
                                    "channels": [{"name": "matches", "product_ids": sorted(products)}],
                                }
                            )
                        )
                        self._register(self._coinbase, ws, products)
        except (ConnectionClosed, ValueError):
            pass
        finally:
            self._binance.pop(ws, None)
            self._coinbase.pop(ws, None)

    def _register(
        self, table: dict[ServerConnection, set[str]], ws: ServerConnection, subs: set[str]
    ) -> None:
        with self._subscribed:
            table[ws] = table.get(ws, set()) | subs
            self._subscribed.notify_all()

    def _send(self, table: pa.Table, ts_sent: int) -> None:
        corrupt = set(wire.corrupt_rows(table).tolist())
        bad = wire.encode(table.take(pa.array(sorted(corrupt))), ts_sent) if corrupt else []
        bad_iter = iter(bad)
        out: list[tuple[str, str, str | bytes]] = []  # (exchange family, topic, frame)
        for i, row in enumerate(table.to_pylist()):
            kind = EVENT_KINDS[row["kind"]]
            exchange = row["exchange"]
            if exchange in BINANCE_EXCHANGES:
                stream, data = binance_message(kind, row, ts_sent)
                frame: str | bytes = (
                    next(bad_iter)
                    if i in corrupt
                    else json.dumps({"stream": stream, "data": data}, separators=(",", ":"))
                )
                out.append(("binance", stream, frame))
            elif exchange == COINBASE and kind == "trade":
                self._sequence[row["symbol"]] += 1
                frame = (
                    next(bad_iter)
                    if i in corrupt
                    else json.dumps(coinbase_match(row, self._sequence[row["symbol"]]), separators=(",", ":"))
                )
                out.append(("coinbase", row["symbol"], frame))
            else:
                if i in corrupt:
                    next(bad_iter)
                self.skipped += 1
        asyncio.run_coroutine_threadsafe(self._deliver(out), self._loop).result()

    async def _deliver(self, frames: list[tuple[str, str, str | bytes]]) -> None:
        for family, topic, frame in frames:
            subscribers = self._binance if family == "binance" else self._coinbase
            for ws, subs in list(subscribers.items()):
                if topic in subs:
                    try:
                        await ws.send(frame)
                    except ConnectionClosed:
                        subscribers.pop(ws, None)

    def _disturb(self, disturbance: Disturbance) -> bool:
        if disturbance.kind != "disconnect":
            return False
        before = self.clients()
        asyncio.run_coroutine_threadsafe(self._drop_all(), self._loop).result()
        if before:
            asyncio.run_coroutine_threadsafe(asyncio.sleep(disturbance.pause_ms / 1e3), self._loop).result()
            self.await_clients(before)  # nothing is sent while the connectors reconnect
        return True

    async def _drop_all(self) -> None:
        connections = [*self._binance, *self._coinbase]
        with self._subscribed:
            self._binance.clear()
            self._coinbase.clear()
        for ws in connections:
            await ws.close(code=1012, reason="replay: injected disconnect")

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            asyncio.run_coroutine_threadsafe(self._server.wait_closed(), self._loop).result(timeout=5)
            self._server = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
