"""Coinbase Exchange ``match`` / ``last_match`` messages as trades and ``ticker`` messages as quotes.

Pure functions shared by the live connector and the recorded-capture readers. A match's ``side`` is the
maker order's side, so the taker (the schema's ``side``) is the opposite. A ticker carries the top of
the book after a trade; its ``sequence`` becomes the quote's ``update_id``. Tickers recorded before the
feed added ``best_bid_size`` / ``best_ask_size`` (2022) hold no full quote and, like ``l2update``,
``subscriptions`` and the other types, yield no events.
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
    if msg.get("type") == "ticker":
        return _ticker(msg, ts_recv)
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


def _ticker(msg: dict[str, Any], ts_recv: int | None) -> list[Event]:
    if "best_bid_size" not in msg or "best_ask_size" not in msg:
        return []
    return [
        (
            "quote",
            {
                "exchange": EXCHANGE,
                "symbol": str(require(msg, "product_id")),
                "bid_px": to_float(require(msg, "best_bid"), "best_bid"),
                "bid_qty": to_float(msg["best_bid_size"], "best_bid_size"),
                "ask_px": to_float(require(msg, "best_ask"), "best_ask"),
                "ask_qty": to_float(msg["best_ask_size"], "best_ask_size"),
                "update_id": to_int(require(msg, "sequence"), "sequence"),
                "ts_event": iso_to_us(require(msg, "time"), "time"),
                "ts_recv": ts_recv,
            },
        )
    ]
