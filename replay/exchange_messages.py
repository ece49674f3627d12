"""Exchange market-data messages built from tape rows, byte for byte as the exchanges write them.

The field sets and their order are those of the exchanges' documentation and of the real captures in
``../shared/real-tapes`` (``tests/replay/test_exchange_messages.py`` checks them against those):

- Binance spot ``trade`` ``{"e","E","s","t","p","q","T","m","M"}`` and ``bookTicker``
  ``{"u","s","b","B","a","A"}`` (no time: a spot book ticker carries none). Prices and quantities with
  eight decimals (``"61837.63000000"``, ``"0.00017000"``).
- Binance USD-M futures ``trade`` ``{"e","E","T","s","t","p","q","X","m"}`` and ``bookTicker``
  ``{"e","u","s","b","B","a","A","T","E"}``. Numbers with the contract's price and quantity precision
  (BTCUSDT: ``"61800.30"``, ``"0.006"``); a contract missing from ``FUTURES_PRECISION`` gets the
  shortest plain decimal.
- Coinbase Exchange ``match`` / ``last_match``, ``ticker`` and ``heartbeat``. Numbers are the shortest
  plain decimal (``"0.04"``, ``"14.7775"``, ``"5"``), as in the real recording; times ISO-8601 with
  microseconds.

Event time ``E`` is the replayed exchange time: the event's own ``ts_event`` (milliseconds), never the
wall clock. Numbers are never written in exponent form (``9e-05``) nor with a spurious ``.0``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

SPOT: Final = "binance"
FUTURES: Final = "binance-futures"
COINBASE: Final = "coinbase"

SPOT_DECIMALS: Final = 8
FUTURES_PRECISION: Final[dict[str, tuple[int, int]]] = {"BTCUSDT": (2, 3)}
"""USD-M contract -> (price decimals, quantity decimals) as the stream writes them (the real capture)."""


def plain_decimal(value: float) -> str:
    """The shortest decimal that reads back as ``value``, without exponent or trailing zeros."""
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _compact(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


def binance_numbers(exchange: str, symbol: str, price: float, qty: float) -> tuple[str, str]:
    """A price and a quantity as Binance writes them on ``exchange`` for ``symbol``."""
    if exchange == SPOT:
        return f"{price:.{SPOT_DECIMALS}f}", f"{qty:.{SPOT_DECIMALS}f}"
    precision = FUTURES_PRECISION.get(symbol)
    if precision is None:
        return plain_decimal(price), plain_decimal(qty)
    return f"{price:.{precision[0]}f}", f"{qty:.{precision[1]}f}"


def binance_trade(row: dict[str, Any]) -> tuple[str, str]:
    """The stream name and raw payload (JSON) Binance sends for one trade row."""
    exchange, symbol = row["exchange"], row["symbol"]
    price, qty = binance_numbers(exchange, symbol, row["price"], row["qty"])
    ms = row["ts_event"] // 1000
    maker = row["side"] == "sell"  # the buyer was the maker when the taker sold
    if exchange == SPOT:
        data: dict[str, Any] = {
            "e": "trade", "E": ms, "s": symbol, "t": row["trade_id"], "p": price, "q": qty,
            "T": ms, "m": maker, "M": True,
        }  # fmt: skip
    else:
        data = {
            "e": "trade", "E": ms, "T": ms, "s": symbol, "t": row["trade_id"], "p": price, "q": qty,
            "X": "MARKET", "m": maker,
        }  # fmt: skip
    return f"{symbol.lower()}@trade", _compact(data)


def binance_book_ticker(row: dict[str, Any]) -> tuple[str, str]:
    """The stream name and raw payload (JSON) Binance sends for one quote row."""
    exchange, symbol = row["exchange"], row["symbol"]
    bid, bid_qty = binance_numbers(exchange, symbol, row["bid_px"], row["bid_qty"])
    ask, ask_qty = binance_numbers(exchange, symbol, row["ask_px"], row["ask_qty"])
    book = {"u": row["update_id"], "s": symbol, "b": bid, "B": bid_qty, "a": ask, "A": ask_qty}
    if exchange == FUTURES:
        ms = row["ts_event"] // 1000
        book = {"e": "bookTicker", **book, "T": ms, "E": ms}
    return f"{symbol.lower()}@bookTicker", _compact(book)


def binance_server_shutdown(ts_us: int) -> str:
    """The spot ``serverShutdown`` event sent before a maintenance close, at replayed time ``ts_us``."""
    return _compact({"e": "serverShutdown", "E": ts_us // 1000})


def coinbase_time(ts_us: int) -> str:
    """Coinbase's ISO-8601 time with microseconds (``2021-04-17T16:43:30.244075Z``)."""
    seconds, micros = divmod(ts_us, 1_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{micros:06d}Z"


@dataclass
class _Product:
    sequence: int = 0
    last_trade: dict[str, Any] | None = None
    open: float | None = None
    high: float = float("-inf")
    low: float = float("inf")
    volume: float = 0.0


@dataclass
class CoinbaseFeed:
    """Per-product state of the Coinbase feed: sequence numbers, the last match, the day's statistics.

    Every message of a product takes the next sequence number; a ticker takes its quote's
    ``update_id`` when that is higher, so a tape's update ids (Coinbase's sequences, for a recording)
    come back unchanged. The 24 h and 30 d statistics of a ticker cover the trades replayed so far.
    """

    products: dict[str, _Product] = field(default_factory=dict)

    def _next(self, product: str, at_least: int = 0) -> _Product:
        state = self.products.setdefault(product, _Product())
        state.sequence = max(state.sequence + 1, at_least)
        return state

    def match(self, row: dict[str, Any]) -> dict[str, Any]:
        """The ``match`` message for one trade row (``side`` is the maker's side)."""
        product = row["symbol"]
        state = self._next(product)
        tid = row["trade_id"]
        msg = {
            "type": "match",
            "trade_id": tid,
            "maker_order_id": str(uuid.UUID(int=(tid << 1) & (2**128 - 1))),
            "taker_order_id": str(uuid.UUID(int=((tid << 1) | 1) & (2**128 - 1))),
            "side": "sell" if row["side"] == "buy" else "buy",
            "size": plain_decimal(row["qty"]),
            "price": plain_decimal(row["price"]),
            "product_id": product,
            "sequence": state.sequence,
            "time": coinbase_time(row["ts_event"]),
        }
        state.last_trade = msg
        state.open = row["price"] if state.open is None else state.open
        state.high = max(state.high, row["price"])
        state.low = min(state.low, row["price"])
        state.volume += row["qty"]
        return msg

    def ticker(self, row: dict[str, Any]) -> dict[str, Any]:
        """The ``ticker`` message for one quote row; the last-trade fields once the product has traded."""
        product = row["symbol"]
        state = self._next(product, row["update_id"])
        msg: dict[str, Any] = {"type": "ticker", "sequence": state.sequence, "product_id": product}
        last = state.last_trade
        if last is not None and state.open is not None:
            volume = plain_decimal(state.volume)
            msg |= {
                "price": last["price"],
                "open_24h": plain_decimal(state.open),
                "volume_24h": volume,
                "low_24h": plain_decimal(state.low),
                "high_24h": plain_decimal(state.high),
                "volume_30d": volume,
            }
        msg |= {
            "best_bid": plain_decimal(row["bid_px"]),
            "best_bid_size": plain_decimal(row["bid_qty"]),
            "best_ask": plain_decimal(row["ask_px"]),
            "best_ask_size": plain_decimal(row["ask_qty"]),
        }
        if last is not None:
            msg |= {"side": "sell" if last["side"] == "buy" else "buy"}  # the taker's side
        msg["time"] = coinbase_time(row["ts_event"])
        if last is not None:
            msg |= {"trade_id": last["trade_id"], "last_size": last["size"]}
        return msg

    def heartbeat(self, product: str, ts_us: int) -> dict[str, Any]:
        """The ``heartbeat`` of a product at replayed time ``ts_us`` (it does not take a sequence)."""
        state = self.products.setdefault(product, _Product())
        last = state.last_trade
        return {
            "type": "heartbeat",
            "sequence": state.sequence,
            "last_trade_id": last["trade_id"] if last is not None else 0,
            "product_id": product,
            "time": coinbase_time(ts_us),
        }


def as_last_match(match: dict[str, Any]) -> dict[str, Any]:
    """A ``match`` message as the ``last_match`` sent right after a ``matches`` subscription."""
    return {**match, "type": "last_match"}
