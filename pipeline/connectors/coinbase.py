"""Coinbase Exchange ``match`` and ``last_match`` messages as trades of the ``core.events`` schema.

Pure functions shared by the live connector and the recorded-capture readers. A match's ``side`` is the
maker order's side, so the taker (the schema's ``side``) is the opposite. Other message types (``ticker``,
``l2update``, ``subscriptions``, ...) yield no events.
"""

from __future__ import annotations

from typing import Any, Final

from core.errors import SchemaError
from core.events import EventKind
from pipeline.connectors._common import iso_to_us, require, to_float, to_int

EXCHANGE: Final = "coinbase"
MATCH_TYPES: Final = ("match", "last_match")
_TAKER = {"buy": "sell", "sell": "buy"}

Event = tuple[EventKind, dict[str, Any]]


def parse_coinbase_message(msg: dict[str, Any], ts_recv: int | None) -> list[Event]:
    """Normalize one Coinbase Exchange message; ``[]`` for types that are not trades.

    ``ts_recv`` is the receive time in µs (None when unknown). A match with a missing or malformed field
    raises ``SchemaError``.
    """
    if msg.get("type") not in MATCH_TYPES:
        return []
    maker_side = require(msg, "side")
    if maker_side not in _TAKER:
        raise SchemaError(f"field 'side': expected 'buy' or 'sell', got {maker_side!r}")
    return [
        (
            "trade",
            {
                "exchange": EXCHANGE,
                "symbol": str(require(msg, "product_id")),
                "trade_id": to_int(require(msg, "trade_id"), "trade_id"),
                "price": to_float(require(msg, "price"), "price"),
                "qty": to_float(require(msg, "size"), "size"),
                "side": _TAKER[maker_side],
                "ts_event": iso_to_us(require(msg, "time"), "time"),
                "ts_recv": ts_recv,
            },
        )
    ]
