"""Messages the replay writes equal the exchanges' own, message by message, on the real captures."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.connectors.binance import parse_binance_message
from pipeline.connectors.coinbase import parse_coinbase_message
from replay.exchange_messages import CoinbaseFeed, binance_book_ticker, binance_trade, plain_decimal
from tests.conftest import REAL_TAPES


@pytest.mark.parametrize(
    ("capture", "exchange"),
    [("spot_btcusdt_20240808.gz", "binance"), ("usdm_btcusdt_20240808.gz", "binance-futures")],
)
def test_binance_messages_rebuilt_from_tape_rows_equal_the_capture(capture: str, exchange: str) -> None:
    """Every trade and bookTicker of a real capture, turned into a tape row and back, is the captured
    payload (same keys in the same order, same strings), but for ``E``: the replay writes the event's
    own exchange time there."""
    checked = 0
    with gzip.open(REAL_TAPES / "binance-ws" / capture, "rt") as f:
        for line in f:
            msg = json.loads(line.partition(" ")[2])
            if not str(msg.get("stream", "")).endswith(("@trade", "@bookTicker")):
                continue
            [(kind, row)] = parse_binance_message(msg, 1, exchange=exchange)
            stream, raw = (binance_trade if kind == "trade" else binance_book_ticker)(row)
            data = json.loads(raw)
            assert stream == msg["stream"]
            assert list(data) == list(msg["data"])
            assert {k: v for k, v in data.items() if k != "E"} == {
                k: v for k, v in msg["data"].items() if k != "E"
            }
            checked += 1
    assert checked > 30_000


def test_coinbase_matches_rebuilt_from_tape_rows_equal_the_recording() -> None:
    feed = CoinbaseFeed()
    own = {"maker_order_id", "taker_order_id", "sequence"}
    checked = 0
    for line in (REAL_TAPES / "coinbase-ws" / "COINBASE.ws.28.0").read_text().splitlines():
        payload = line.partition(": ")[2]
        if '"type":"match"' not in payload:
            continue
        msg = json.loads(payload)
        [(_, row)] = parse_coinbase_message(msg, None)
        assert {k: v for k, v in feed.match(row).items() if k not in own} == {
            k: v for k, v in msg.items() if k not in own
        }
        checked += 1
    assert checked == 97


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_plain_decimal_is_exact_and_never_exponent(value: float) -> None:
    text = plain_decimal(value)
    assert "e" not in text.lower() and float(text) == value
    assert Decimal(text) == Decimal(repr(value))
    assert not text.endswith(".0") and (text == "0" or "." not in text or not text.endswith("0"))


def test_plain_decimal_examples() -> None:
    assert [plain_decimal(v) for v in (9e-05, 1.0, 0.04, 14.7775, 61800.3)] == [
        "0.00009",
        "1",
        "0.04",
        "14.7775",
        "61800.3",
    ]
