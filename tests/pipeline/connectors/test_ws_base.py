"""BaseConnector: decoding, normalizing and sinking messages; bad messages are counted, never fatal."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import socket

import pytest

from core.errors import ConfigError
from pipeline.connectors.base import ConnectorError, Event, Gap
from pipeline.connectors.binance_ws import HOLD_US, BinanceConnector
from pipeline.connectors.coinbase_ws import CoinbaseConnector

TRADE = {
    "stream": "btcusdt@trade",
    "data": {
        "e": "trade",
        "E": 1723161600001,
        "s": "BTCUSDT",
        "t": 7,
        "p": "60000.5",
        "q": "0.25",
        "T": 1723161600000,
        "m": True,
        "M": True,
    },
}


def test_binance_url_subscribes_to_trades_and_book_tickers() -> None:
    c = BinanceConnector(["BTCUSDT", "ETHUSDT"], lambda e: None, base_url="ws://127.0.0.1:1")
    assert c.url == (
        "ws://127.0.0.1:1/stream?streams=btcusdt@trade/btcusdt@bookTicker/ethusdt@trade/ethusdt@bookTicker"
    )
    assert BinanceConnector(["BTCUSDT"], lambda e: None).url.startswith("wss://stream.binance.com:9443/")


def test_handle_sinks_events_and_counts_bad_messages() -> None:
    got: list[Event] = []
    bad: list[tuple[str, str]] = []
    c = BinanceConnector(["BTCUSDT"], got.extend, on_bad_message=lambda raw, why: bad.append((raw, why)))
    c.handle(json.dumps(TRADE), 5)
    c.handle(b'{"v":1,"type":"tr\xff\xfe<corrupt>', 6)
    c.handle("[1, 2]", 7)
    broken = {**TRADE, "data": {**TRADE["data"], "p": "not a price"}}  # type: ignore[dict-item]
    c.handle(json.dumps(broken), 8)
    assert got == [
        (
            "trade",
            {
                "exchange": "binance",
                "symbol": "BTCUSDT",
                "trade_id": 7,
                "price": 60000.5,
                "qty": 0.25,
                "side": "sell",
                "ts_event": 1723161600000000,
                "ts_recv": 5,
            },
        )
    ]
    assert (c.messages, c.events, c.bad_messages) == (4, 1, 3) and len(bad) == 3


def test_coinbase_subscribes_to_matches_and_ticker() -> None:
    c = CoinbaseConnector(["BTC-USD"], lambda e: None)
    assert c.url == "wss://ws-feed.exchange.coinbase.com"
    assert c.subscribe_messages() == [
        {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["matches", "ticker"]}
    ]


def test_coinbase_last_match_after_a_resubscription_is_not_doubled() -> None:
    got: list[Event] = []
    c = CoinbaseConnector(["BTC-USD"], got.extend)
    match = {
        "type": "match", "trade_id": 10, "side": "buy", "size": "0.5", "price": "100",
        "product_id": "BTC-USD", "sequence": 1, "time": "2024-08-09T00:00:00.000001Z",
    }  # fmt: skip
    c.handle(json.dumps({**match, "type": "last_match", "trade_id": 9}), 1)  # first subscription: new
    c.handle(json.dumps(match), 2)
    c.handle(json.dumps({**match, "type": "last_match"}), 3)  # after a reconnect: already seen
    c.handle(json.dumps({**match, "trade_id": 11}), 4)
    assert [e["trade_id"] for _, e in got] == [9, 10, 11]


def _trade_msg(trade_id: int) -> str:
    return json.dumps({**TRADE, "data": {**TRADE["data"], "t": trade_id}})  # type: ignore[dict-item]


def test_trade_id_gaps_are_counted_and_reported_with_the_reconnect_before_them() -> None:
    gaps: list[Gap] = []
    c = BinanceConnector(["BTCUSDT"], lambda e: None, on_gap=gaps.append)
    for trade_id in (1, 2, 5, 5, 6):
        c.handle(_trade_msg(trade_id), 1)
    c._reconnected = {"BTCUSDT"}  # what a lost connection leaves behind
    c.handle(_trade_msg(9), 2)
    c.handle(_trade_msg(10), 3)
    assert gaps == [Gap("binance", "BTCUSDT", 2, 5, False), Gap("binance", "BTCUSDT", 6, 9, True)]
    assert (c.gaps, c.missing_trades) == (2, 4)


def test_binance_channels_take_trade_or_aggtrade_not_both() -> None:
    c = BinanceConnector(["BTCUSDT"], lambda e: None, base_url="ws://h", channels=("aggTrade",))
    assert c.url == "ws://h/stream?streams=btcusdt@aggTrade"
    with pytest.raises(ConfigError, match="not both"):
        BinanceConnector(["BTCUSDT"], lambda e: None, channels=("trade", "aggTrade"))


class _Ceiling(random.Random):
    """Answers the upper bound of every delay and records the bounds asked for."""

    def __init__(self) -> None:
        super().__init__(0)
        self.asked: list[float] = []

    def uniform(self, a: float, b: float) -> float:
        self.asked.append(b)
        return b


def test_an_unreachable_endpoint_is_retried_with_growing_delays_then_a_clear_error() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rng = _Ceiling()
    c = CoinbaseConnector(
        ["BTC-USD"], lambda e: None, url=f"ws://127.0.0.1:{port}", max_reconnects=4,
        reconnect_base_s=0.001, reconnect_max_s=0.004, rng=rng,
    )  # fmt: skip
    with pytest.raises(ConnectorError, match="unreachable after 5 attempts"):
        asyncio.run(c.run())
    assert rng.asked == pytest.approx([0.001, 0.002, 0.004, 0.004]) and c.reconnects == 4


BOOK = {
    "stream": "btcusdt@bookTicker",
    "data": {"u": 5, "s": "BTCUSDT", "b": "1", "B": "1", "a": "2", "A": "1"},
}
T_MS = TRADE["data"]["T"]  # type: ignore[index]


def test_spot_book_tickers_are_dated_by_the_exchange_clock_of_the_connection() -> None:
    """The receiver's clock runs 5 s ahead of the exchange's: book tickers held until the first trade,
    then dated at receive time minus the offset that trade showed."""
    got: list[Event] = []
    c = BinanceConnector(["BTCUSDT"], got.extend)
    ahead = T_MS * 1000 + 5_000_000
    c.handle(json.dumps(BOOK), ahead - 300)  # before any trade: held
    assert got == []
    c.handle(_trade_msg(1), ahead)  # its exchange time is T: the offset is 5 s
    c.handle(json.dumps(BOOK), ahead + 700)
    assert [(k, e["ts_event"]) for k, e in got] == [
        ("quote", T_MS * 1000 - 300),
        ("trade", T_MS * 1000),
        ("quote", T_MS * 1000 + 700),
    ]


def test_held_book_tickers_go_out_by_receive_time_when_no_trade_comes() -> None:
    got: list[Event] = []
    c = BinanceConnector(["BTCUSDT"], got.extend)
    c.handle(json.dumps(BOOK), 10)
    c.handle(json.dumps(BOOK), 10 + HOLD_US)  # held for a second of receive time: released
    assert [e["ts_event"] for _, e in got] == [10, 10 + HOLD_US]
    quotes_only = BinanceConnector(["BTCUSDT"], got.extend, channels=("bookTicker",))
    quotes_only.handle(json.dumps(BOOK), 20)  # no exchange clock on this connection at all
    assert got[-1][1]["ts_event"] == 20


async def _silent_server() -> tuple[asyncio.Server, int, list[int]]:
    """Accepts WebSocket handshakes, then never answers anything (not even a ping): a stalled feed."""
    handshakes: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        handshakes.append(1)
        await reader.read()  # hold the connection, answer nothing

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], handshakes


def test_a_missing_pong_drops_the_connection_and_the_connector_reconnects() -> None:
    async def scenario() -> tuple[int, int, int]:
        server, port, handshakes = await _silent_server()
        c = BinanceConnector(
            ["BTCUSDT"], lambda e: None, base_url=f"ws://127.0.0.1:{port}", ping_interval_s=0.05,
            ping_timeout_s=0.05, reconnect_base_s=0.001, reconnect_max_s=0.002,
        )  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.ensure_future(c.run(stop))
        while len(handshakes) < 3:
            await asyncio.sleep(0.01)
        stop.set()
        await task
        server.close()
        return len(handshakes), c.disconnects, c.reconnects

    handshakes, disconnects, reconnects = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert handshakes >= 3 and disconnects >= 2 and reconnects >= 2
