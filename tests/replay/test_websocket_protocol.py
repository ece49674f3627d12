"""The WebSocket replay's protocol, as the exchanges document it: Binance methods, replies and errors,
raw and combined streams, spot/futures separation, ping/pong, Coinbase subscriptions, heartbeats and
last_match, the maintenance close at the end, bounded requests and thread-safe subscriber bookkeeping."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from replay.engine import Replay
from replay.faults import DisconnectFault, FaultSpec
from replay.targets.websocket import MAX_REQUEST_BYTES, WebSocketTarget
from replay.testkit import write_tape

T0 = 1_723_161_600_000_000  # 2024-08-09 00:00:00 UTC, in µs
TIMEOUT = 20.0


def _trade(exchange: str, symbol: str, i: int, at_us: int) -> dict[str, Any]:
    return {
        "exchange": exchange, "symbol": symbol, "trade_id": 100 + i, "price": 61837.63 + i,
        "qty": 0.00009, "side": "sell" if i % 2 else "buy", "ts_event": at_us, "ts_recv": None,
    }  # fmt: skip


def _quote(exchange: str, symbol: str, i: int, at_us: int) -> dict[str, Any]:
    return {
        "exchange": exchange, "symbol": symbol, "bid_px": 61837.5, "bid_qty": 1.0, "ask_px": 61837.6,
        "ask_qty": 2.5, "update_id": 5000 + i * 10, "ts_event": at_us, "ts_recv": None,
    }  # fmt: skip


@pytest.fixture
def tape(tmp_path: Path) -> Path:
    """Spot, futures and Coinbase trades and quotes over 3 s of exchange time."""
    trades, quotes = [], []
    for i in range(6):
        at = T0 + i * 500_000
        trades += [_trade("binance", "BTCUSDT", i, at), _trade("binance-futures", "BTCUSDT", i, at + 1)]
        trades += [_trade("coinbase", "BTC-USD", i, at + 2)]
        quotes += [_quote("binance", "BTCUSDT", i, at + 3), _quote("binance-futures", "BTCUSDT", i, at + 4)]
        quotes += [_quote("coinbase", "BTC-USD", i, at + 5)]
    write_tape(tmp_path / "tape", trades, quotes)
    return tmp_path / "tape"


def _run(body: Callable[[WebSocketTarget], Awaitable[None]], **target_args: Any) -> None:
    target = WebSocketTarget(client_timeout_s=TIMEOUT, **target_args)
    target.start()
    try:
        asyncio.run(asyncio.wait_for(body(target), TIMEOUT * 2))
    finally:
        target.close()


async def _ask(ws: ClientConnection, request: Any) -> Any:
    await ws.send(request if isinstance(request, str) else json.dumps(request))
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def _drain(ws: ClientConnection) -> list[Any]:
    """Every message until the server closes the connection."""
    out = []
    try:
        while True:
            out.append(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)))
    except ConnectionClosed:
        return out


def test_binance_methods_replies_and_errors() -> None:
    async def body(target: WebSocketTarget) -> None:
        async with connect(target.endpoint("binance") + "/ws") as ws:
            assert await _ask(
                ws, {"method": "SUBSCRIBE", "params": ["btcusdt@trade", "ethusdt@bookTicker"], "id": 1}
            ) == {"result": None, "id": 1}
            assert await _ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 2}) == {
                "result": ["btcusdt@trade", "ethusdt@bookTicker"],
                "id": 2,
            }
            assert await _ask(ws, {"method": "UNSUBSCRIBE", "params": ["ethusdt@bookTicker"], "id": 312}) == {
                "result": None,
                "id": 312,
            }
            assert await _ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": "abc"}) == {
                "result": ["btcusdt@trade"],
                "id": "abc",
            }
            assert await _ask(ws, {"method": "GET_PROPERTY", "params": ["combined"], "id": 3}) == {
                "result": False,
                "id": 3,
            }
            assert await _ask(ws, {"method": "SET_PROPERTY", "params": ["combined", True], "id": 4}) == {
                "result": None,
                "id": 4,
            }
            assert await _ask(ws, {"method": "GET_PROPERTY", "params": ["combined"], "id": 5}) == {
                "result": True,
                "id": 5,
            }
            # the documented errors
            assert (await _ask(ws, "{not json"))["code"] == 3
            assert await _ask(ws, {"params": [], "id": 6}) == {
                "code": 2,
                "msg": "Invalid request: missing field `method`",
            }
            assert (await _ask(ws, {"method": "PING", "id": 7}))["msg"].startswith(
                "Invalid request: unknown variant `PING`"
            )
            assert await _ask(ws, {"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": -1}) == {
                "code": 2,
                "msg": "Invalid request: request ID must be an unsigned integer",
            }
            assert await _ask(ws, {"method": "GET_PROPERTY", "params": ["colour"], "id": 8}) == {
                "code": 0,
                "msg": "Unknown property",
                "id": 8,
            }
            assert await _ask(ws, {"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 9}) == {
                "code": 1,
                "msg": "Invalid value type: expected Boolean",
                "id": 9,
            }
            assert await _ask(ws, {"method": "GET_PROPERTY", "params": [1], "id": 10}) == {
                "code": 2,
                "msg": "Invalid request: property name must be a string",
                "id": 10,
            }
            assert await _ask(ws, {"method": "GET_PROPERTY", "params": ["combined", 1], "id": 11}) == {
                "code": 2,
                "msg": "Invalid request: too many parameters",
                "id": 11,
            }
            assert (await _ask(ws, {"method": "SUBSCRIBE", "params": [7], "id": 12}))["code"] == 2
            # a combined connection starts combined; a raw one names its stream in the path
        async with connect(target.endpoint("binance-futures") + "/stream?streams=btcusdt@trade") as ws:
            assert await _ask(ws, {"method": "GET_PROPERTY", "params": ["combined"], "id": 1}) == {
                "result": True,
                "id": 1,
            }
            assert await _ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 2}) == {
                "result": ["btcusdt@trade"],
                "id": 2,
            }
        async with connect(target.endpoint("binance") + "/ws/btcusdt@trade") as ws:
            assert await _ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1}) == {
                "result": ["btcusdt@trade"],
                "id": 1,
            }

    _run(body)


def test_subscribe_by_message_separates_spot_futures_and_exchanges(tape: Path) -> None:
    """Raw and combined connections, subscribed by URL or by message, get exactly their streams, in
    their market's field set, with E the event's exchange time; the end of the tape closes them all
    with 1001 after a spot ``serverShutdown``."""

    async def body(target: WebSocketTarget) -> None:
        spot = await connect(target.endpoint("binance") + "/ws")
        futures = await connect(target.endpoint("binance-futures") + "/market/stream")
        spot_url = await connect(target.endpoint("binance") + "/stream?streams=btcusdt@bookTicker")
        for ws in (spot, futures):
            await _ask(
                ws, {"method": "SUBSCRIBE", "params": ["btcusdt@trade", "btcusdt@bookTicker"], "id": 1}
            )
        await _ask(spot, {"method": "UNSUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 2})
        replay = asyncio.ensure_future(asyncio.to_thread(Replay([tape], target).run))
        got_spot, got_futures, got_url = await asyncio.gather(_drain(spot), _drain(futures), _drain(spot_url))
        summary = await replay
        assert summary.sent == 36
        assert spot.close_code == futures.close_code == spot_url.close_code == 1001

        *trades, shutdown = got_spot
        assert shutdown == {"e": "serverShutdown", "E": (T0 + 5 * 500_000 + 5) // 1000}
        assert [m["t"] for m in trades] == list(range(100, 106))
        assert all(list(m) == ["e", "E", "s", "t", "p", "q", "T", "m", "M"] for m in trades)
        assert trades[1]["p"] == "61838.63000000" and trades[1]["q"] == "0.00009000"
        assert all(m["E"] == m["T"] and m["T"] * 1000 == T0 + i * 500_000 for i, m in enumerate(trades))

        assert {m["stream"] for m in got_futures} == {"btcusdt@trade", "btcusdt@bookTicker"}
        fut_trades = [m["data"] for m in got_futures if m["stream"] == "btcusdt@trade"]
        fut_books = [m["data"] for m in got_futures if m["stream"] == "btcusdt@bookTicker"]
        assert all(list(m) == ["e", "E", "T", "s", "t", "p", "q", "X", "m"] for m in fut_trades)
        assert fut_trades[0]["p"] == "61837.63" and fut_trades[0]["q"] == "0.000"  # BTCUSDT's precision
        assert all(list(m) == ["e", "u", "s", "b", "B", "a", "A", "T", "E"] for m in fut_books)
        assert len(fut_trades) == len(fut_books) == 6

        *books, shutdown = got_url
        assert shutdown["e"] == "serverShutdown"
        assert [b["stream"] for b in books] == ["btcusdt@bookTicker"] * 6
        assert all(list(b["data"]) == ["u", "s", "b", "B", "a", "A"] for b in books)
        assert books[0]["data"]["B"] == "1.00000000"

    _run(body)


def test_coinbase_subscriptions_heartbeats_and_last_match(tape: Path) -> None:
    async def body(target: WebSocketTarget) -> None:
        async with connect(target.endpoint("coinbase")) as bad:
            assert (
                await _ask(bad, {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["level2"]})
            )["type"] == "error"
            assert (await _ask(bad, {"type": "subscribe", "channels": ["heartbeat"]}))["reason"] == (
                "You need to specify at least one product ID for channel heartbeat"
            )
            assert (await _ask(bad, "nope"))["type"] == "error"
        ws = await connect(target.endpoint("coinbase"))
        ack = await _ask(
            ws,
            {
                "type": "subscribe",
                "product_ids": ["BTC-USD"],
                "channels": ["matches", "heartbeat", {"name": "ticker", "product_ids": ["BTC-USD"]}],
            },
        )
        assert ack == {
            "type": "subscriptions",
            "channels": [{"name": n, "product_ids": ["BTC-USD"]} for n in ("matches", "heartbeat", "ticker")],
        }
        replay = asyncio.ensure_future(asyncio.to_thread(Replay([tape], target).run))
        got = await _drain(ws)
        await replay
        assert ws.close_code == 1001
        matches = [m for m in got if m["type"] == "match"]
        tickers = [m for m in got if m["type"] == "ticker"]
        beats = [m for m in got if m["type"] == "heartbeat"]
        assert len(matches) == len(tickers) == 6
        assert [b["time"] for b in beats] == ["2024-08-09T00:00:01.000000Z", "2024-08-09T00:00:02.000000Z"]
        assert beats[-1]["last_trade_id"] == 103 and beats[-1]["product_id"] == "BTC-USD"
        sequences = [m["sequence"] for m in got if m["type"] != "heartbeat"]
        assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
        assert [t["sequence"] for t in tickers] == [5000 + i * 10 for i in range(6)]  # the tape's update ids
        assert matches[0]["size"] == "0.00009" and matches[0]["side"] == "sell"  # the maker's side
        assert tickers[0]["best_bid_size"] == "1" and "price" in tickers[0] and tickers[0]["side"] == "buy"

    _run(body)


def test_last_match_follows_a_matches_subscription(tape: Path) -> None:
    """After a dropped connection (an injected disconnect once every Coinbase trade went out; the replay
    waits for the client to come back), a new ``matches`` subscription first gets the last trade."""

    async def body(target: WebSocketTarget) -> None:
        first = await connect(target.endpoint("coinbase"))
        await _ask(first, {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["matches"]})
        faults = FaultSpec(disconnect=DisconnectFault(every=33, pause_ms=0))
        replay = asyncio.ensure_future(asyncio.to_thread(Replay([tape], target, faults=faults).run))
        before = await _drain(first)
        assert [m["trade_id"] for m in before] == list(range(100, 106)) and first.close_code == 1012
        second = await connect(target.endpoint("coinbase"))
        await _ask(second, {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["matches"]})
        last, *rest = await _drain(second)
        assert last == {**before[-1], "type": "last_match"} and rest == []
        await replay

    _run(body, wait_for_clients=1)


def test_ping_pong_and_keepalive() -> None:
    """The server answers pings, pings every interval and drops a client whose pong is late."""

    async def body(target: WebSocketTarget) -> None:
        async with connect(target.endpoint("binance-futures") + "/ws") as ws:
            pong = await ws.ping(b"payload")
            await asyncio.wait_for(pong, TIMEOUT)
        # a raw socket that never answers: it gets a ping frame, then the close
        port = target.port
        frames = await asyncio.to_thread(_silent_client, port, "/binance/ws/btcusdt@trade")
        assert frames[0] == 0x9  # ping
        assert frames[-1] == 0x8  # close

    _run(body, keepalive={"binance": (0.05, 0.2)})


def _silent_client(port: int, path: str) -> list[int]:
    """A WebSocket client that completes the handshake and then never answers: the opcodes it receives."""
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        reader = sock.makefile("rb")
        assert b"101" in reader.readline()
        while reader.readline() not in (b"\r\n", b""):
            pass
        opcodes: list[int] = []
        while True:
            head = reader.read(2)
            if len(head) < 2:
                return opcodes
            size = head[1] & 0x7F
            if size == 126:
                size = int.from_bytes(reader.read(2), "big")
            elif size == 127:
                size = int.from_bytes(reader.read(8), "big")
            reader.read(size)
            opcodes.append(head[0] & 0x0F)
            if opcodes[-1] == 0x8:
                return opcodes


def test_unknown_paths_and_oversized_requests_are_refused() -> None:
    async def body(target: WebSocketTarget) -> None:
        for path in ("/", "/stream?streams=btcusdt@trade", "/binance/nowhere", "/coinbase/x"):
            with pytest.raises(InvalidStatus) as e:
                await connect(target.url + path)
            assert e.value.response.status_code == 404
        async with connect(target.endpoint("binance") + "/ws", max_size=None) as ws:
            await ws.send("x" * (MAX_REQUEST_BYTES + 1))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert ws.close_code == 1009  # message too big

    _run(body)


def test_subscriber_count_is_safe_to_read_while_clients_churn() -> None:
    """Issue 23 item 4: ``clients()`` from another thread while the loop adds and drops subscribers."""
    errors: list[BaseException] = []
    stop = threading.Event()

    async def body(target: WebSocketTarget) -> None:
        def reader() -> None:
            try:
                while not stop.is_set():
                    assert target.clients() >= 0
            except BaseException as e:  # reported below
                errors.append(e)

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            for _ in range(40):
                conns = [await connect(target.endpoint("binance") + f"/ws/s{i}@trade") for i in range(10)]
                await asyncio.gather(*(c.close() for c in conns))
        finally:
            stop.set()
            thread.join()

    _run(body)
    assert errors == []


def test_wait_for_clients_times_out_with_advice() -> None:
    from core.errors import ReplayError

    target = WebSocketTarget(wait_for_clients=1, client_timeout_s=0.1)
    target.start()
    try:
        with pytest.raises(ReplayError, match="0 of 1 WebSocket clients subscribed"):
            target.await_clients(1)
    finally:
        target.close()
