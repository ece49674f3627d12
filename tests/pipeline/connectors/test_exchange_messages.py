"""The exchange message parsers shared by the live connectors and the capture readers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import SchemaError
from core.events import SCHEMAS
from pipeline.connectors.binance import parse_binance_message
from pipeline.connectors.coinbase import parse_coinbase_message

SPOT_TRADE = {
    "e": "trade",
    "E": 1723161255343,
    "s": "BTCUSDT",
    "t": 3735683259,
    "p": "61837.63000000",
    "q": "0.02000000",
    "T": 1723161255342,
    "m": True,
    "M": True,
}
FUT_TRADE = {
    "e": "trade",
    "E": 1723161256322,
    "T": 1723161256322,
    "s": "BTCUSDT",
    "t": 5266583935,
    "p": "61800.30",
    "q": "0.006",
    "X": "MARKET",
    "m": False,
}
SPOT_BOOK = {
    "u": 50093239212,
    "s": "BTCUSDT",
    "b": "61837.63",
    "B": "3.78826",
    "a": "61837.64",
    "A": "1.54698",
}
FUT_BOOK = {
    "e": "bookTicker",
    "u": 5123107839020,
    "s": "BTCUSDT",
    "b": "61800.20",
    "B": "2.507",
    "a": "61800.30",
    "A": "2.510",
    "T": 1723161256313,
    "E": 1723161256313,
}
AGG = {
    "e": "aggTrade",
    "E": 1,
    "s": "ETHUSDT",
    "a": 77,
    "p": "3000.5",
    "q": "1.5",
    "f": 100,
    "l": 102,
    "T": 1735689600123456,
    "m": False,
    "M": True,
}
MATCH = {
    "type": "match",
    "trade_id": 1568268,
    "side": "sell",
    "size": "450",
    "price": "0.791",
    "product_id": "SKL-USD",
    "sequence": 201390075,
    "time": "2021-04-17T16:43:37.121358Z",
}


def test_spot_trade_in_an_envelope() -> None:
    [(kind, ev)] = parse_binance_message({"stream": "btcusdt@trade", "data": SPOT_TRADE}, 5)
    assert kind == "trade"
    assert ev == {
        "exchange": "binance",
        "symbol": "BTCUSDT",
        "trade_id": 3735683259,
        "price": 61837.63,
        "qty": 0.02,
        "side": "sell",
        "ts_event": 1723161255342000,
        "ts_recv": 5,
    }
    assert set(ev) == set(SCHEMAS["trade"].names)


def test_futures_trade_and_book_ticker_raw() -> None:
    [(_, trade)] = parse_binance_message(FUT_TRADE, None)
    assert (trade["exchange"], trade["side"], trade["ts_recv"]) == ("binance-futures", "buy", None)
    [(kind, quote)] = parse_binance_message(FUT_BOOK, 9)
    assert kind == "quote"
    assert quote["exchange"] == "binance-futures"
    assert quote["ts_event"] == 1723161256313000
    assert set(quote) == set(SCHEMAS["quote"].names)


def test_spot_book_ticker_takes_the_receive_time_and_needs_it() -> None:
    [(_, quote)] = parse_binance_message(SPOT_BOOK, 1723161254087891)
    assert (quote["exchange"], quote["ts_event"], quote["update_id"]) == (
        "binance",
        1723161254087891,
        50093239212,
    )
    with pytest.raises(SchemaError, match="receive timestamp"):
        parse_binance_message(SPOT_BOOK, None)


def test_agg_trade_in_microseconds_uses_the_aggregate_id() -> None:
    [(_, ev)] = parse_binance_message(AGG, None)
    assert (ev["exchange"], ev["trade_id"], ev["ts_event"], ev["side"]) == (
        "binance",
        77,
        1735689600123456,
        "buy",
    )
    [(_, forced)] = parse_binance_message(AGG, None, exchange="binance-futures")
    assert forced["exchange"] == "binance-futures"


def test_streams_without_trades_or_quotes_give_nothing() -> None:
    assert parse_binance_message({"stream": "btcusdt@depth@100ms", "data": {"e": "depthUpdate"}}, 1) == []
    assert parse_binance_message({"lastUpdateId": 1, "bids": [], "asks": []}, 1) == []
    assert parse_binance_message({"result": None, "id": 1}, 1) == []


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [("p", "abc", "'p'"), ("T", 12, "'T'"), ("m", "yes", "'m'"), ("t", None, "'t'")],
)
def test_malformed_binance_fields_are_schema_errors(field: str, value: object, problem: str) -> None:
    with pytest.raises(SchemaError, match=problem):
        parse_binance_message({**SPOT_TRADE, field: value}, None)


def test_coinbase_match_taker_is_the_opposite_of_the_maker() -> None:
    [(kind, ev)] = parse_coinbase_message(MATCH, 7)
    assert kind == "trade"
    assert ev == {
        "exchange": "coinbase",
        "symbol": "SKL-USD",
        "trade_id": 1568268,
        "price": 0.791,
        "qty": 450.0,
        "side": "buy",
        "ts_event": 1618677817121358,
        "ts_recv": 7,
    }
    [(_, last)] = parse_coinbase_message({**MATCH, "type": "last_match", "side": "buy"}, None)
    assert last["side"] == "sell"
    assert parse_coinbase_message({"type": "ticker", "price": "1"}, None) == []


def test_coinbase_bad_side_and_time_are_schema_errors() -> None:
    with pytest.raises(SchemaError, match="side"):
        parse_coinbase_message({**MATCH, "side": "up"}, None)
    with pytest.raises(SchemaError, match="time"):
        parse_coinbase_message({**MATCH, "time": "yesterday"}, None)


@given(
    st.integers(0, 2**62),
    st.decimals(min_value="0.00000001", max_value="1000000", places=8),
    st.integers(946_684_800_000, 4_102_444_799_999),
    st.booleans(),
)
def test_binance_trade_fields_survive_normalisation(tid: int, price: object, ms: int, maker: bool) -> None:
    msg = {**SPOT_TRADE, "t": tid, "p": str(price), "T": ms, "m": maker}
    [(_, ev)] = parse_binance_message(msg, None)
    assert ev["trade_id"] == tid
    assert ev["price"] == float(str(price))
    assert ev["ts_event"] == ms * 1000
    assert ev["side"] == ("sell" if maker else "buy")
