"""The wire format and identifiers shared by every component."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import SchemaError
from core.events import SCHEMA_VERSION, event_id, partition_key, to_wire
from pipeline.alerts import alert_id


@given(
    trade_id=st.integers(min_value=0, max_value=2**62),
    price=st.floats(min_value=1e-8, max_value=1e9),
    qty=st.floats(min_value=1e-8, max_value=1e6),
    ts=st.integers(min_value=0, max_value=2**62),
)
def test_trade_wire_record_round_trips_through_json(trade_id: int, price: float, qty: float, ts: int) -> None:
    row = {"exchange": "binance", "symbol": "BTCUSDT", "trade_id": trade_id, "price": price, "qty": qty,
           "side": "buy", "ts_event": ts, "ts_recv": None}
    payload = json.loads(to_wire("trade", row, ts_sent=ts + 1))
    assert payload == {"v": SCHEMA_VERSION, "type": "trade", **row, "ts_sent": ts + 1}


def test_unknown_kind_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="unknown event kind"):
        to_wire("order", {})  # type: ignore[arg-type]


def test_identifiers_are_stable() -> None:
    assert event_id("trade", "binance", "BTCUSDT", 42) == "trade:binance:BTCUSDT:42"
    assert partition_key("coinbase", "BTC-USD") == "coinbase:BTC-USD"
    first = alert_id("MOD-001", "binance", "BTCUSDT", 42)
    assert first == alert_id("MOD-001", "binance", "BTCUSDT", "42")
    assert len(first) == 32
    assert first != alert_id("MOD-001", "binance", "BTCUSDT", 43)
