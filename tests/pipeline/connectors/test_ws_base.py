"""BaseConnector: decoding, normalizing and sinking messages; bad messages are counted, never fatal."""

from __future__ import annotations

import asyncio
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
