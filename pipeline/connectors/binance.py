"""Binance market-data messages (spot and USD-M futures) as events of the ``core.events`` schema.

Pure functions, shared by the live connector and the recorded-capture readers, so that a recorded and a
live message become exactly the same event.

Handled streams: ``trade``, ``aggTrade`` (its ``a`` id is the trade id) and ``bookTicker``; other streams
(``depth``, REST snapshots, subscription replies) yield no events. Futures messages are told from spot
ones by their fields: a futures ``trade`` has ``X``, futures ``aggTrade`` lacks spot's ``M``, a futures
``bookTicker`` has ``e`` and ``T``. A spot ``bookTicker`` carries no time at all, so its ``ts_event`` is
the receive time (which includes the receiver's clock offset).
"""

from __future__ import annotations

from typing import Any, Final

from core.errors import SchemaError
from core.events import EventKind
from pipeline.connectors._common import epoch_to_us, require, to_float, to_int

SPOT: Final = "binance"
FUTURES: Final = "binance-futures"
EXCHANGES: Final = (SPOT, FUTURES)

Event = tuple[EventKind, dict[str, Any]]


def parse_binance_message(
    msg: dict[str, Any], ts_recv: int | None, *, exchange: str | None = None
) -> list[Event]:
    """Normalize one Binance message (raw payload or combined-stream envelope ``{"stream", "data"}``).

    ``ts_recv`` is the receive time in µs (None when unknown). ``exchange`` forces ``binance`` or
    ``binance-futures`` when the caller knows the endpoint; otherwise it is inferred from the fields.
    Returns ``[]`` for streams that carry no trades or quotes; raises ``SchemaError`` for a trade or
    quote message with a missing or malformed field.
    """
    if exchange is not None and exchange not in EXCHANGES:
        raise SchemaError(f"unknown Binance exchange {exchange!r}; expected one of {EXCHANGES}")
    data = msg.get("data") if "stream" in msg else msg
    if not isinstance(data, dict):
        return []
    etype = data.get("e")
    if etype == "trade":
        return [("trade", _trade(data, "t", ts_recv, exchange or (FUTURES if "X" in data else SPOT)))]
    if etype == "aggTrade":
        return [("trade", _trade(data, "a", ts_recv, exchange or (SPOT if "M" in data else FUTURES)))]
    if etype == "bookTicker" or (etype is None and {"u", "b", "a", "B", "A"} <= data.keys()):
        return [("quote", _quote(data, ts_recv, exchange or (FUTURES if "T" in data else SPOT)))]
    return []


def _trade(data: dict[str, Any], id_field: str, ts_recv: int | None, exchange: str) -> dict[str, Any]:
    maker = require(data, "m")
    if not isinstance(maker, bool):
        raise SchemaError(f"field 'm': expected true or false, got {maker!r}")
    return {
        "exchange": exchange,
        "symbol": str(require(data, "s")),
        "trade_id": to_int(require(data, id_field), id_field),
        "price": to_float(require(data, "p"), "p"),
        "qty": to_float(require(data, "q"), "q"),
        # m: the buyer is the maker, so the taker sold
        "side": "sell" if maker else "buy",
        "ts_event": epoch_to_us(require(data, "T"), "T"),
        "ts_recv": ts_recv,
    }


def _quote(data: dict[str, Any], ts_recv: int | None, exchange: str) -> dict[str, Any]:
    if "T" in data:
        ts_event = epoch_to_us(data["T"], "T")
    elif "E" in data:
        ts_event = epoch_to_us(data["E"], "E")
    elif ts_recv is not None:
        ts_event = ts_recv
    else:
        raise SchemaError("a spot bookTicker carries no time: a receive timestamp is needed for ts_event")
    return {
        "exchange": exchange,
        "symbol": str(require(data, "s")),
        "bid_px": to_float(require(data, "b"), "b"),
        "bid_qty": to_float(require(data, "B"), "B"),
        "ask_px": to_float(require(data, "a"), "a"),
        "ask_qty": to_float(require(data, "A"), "A"),
        "update_id": to_int(require(data, "u"), "u"),
        "ts_event": ts_event,
        "ts_recv": ts_recv,
    }
