"""The exchanges' WebSocket request protocols, as the replay's server applies them to one connection.

Binance (spot and USD-M futures market streams): connection paths ``/ws``, ``/ws/<stream>``,
``/stream?streams=a/b`` (USD-M also under its routed ``/public`` and ``/market`` prefixes); requests
``SUBSCRIBE``, ``UNSUBSCRIBE``, ``LIST_SUBSCRIPTIONS``, ``SET_PROPERTY`` / ``GET_PROPERTY`` (``combined``)
answered ``{"result": ..., "id": N}``, or with the documented ``{"code", "msg"}`` errors: 0 unknown
property, 1 invalid value type, 2 invalid request, 3 invalid JSON (the wording after ``Invalid
request:`` is ours where the documentation gives none).

Coinbase Exchange feed: ``subscribe`` / ``unsubscribe`` with ``product_ids`` and ``channels`` (names or
``{"name", "product_ids"}``), answered by ``subscriptions`` listing everything the connection holds, or
by an ``error`` message with ``message`` and ``reason``.

Pure functions of a ``Session``; the server (``replay.targets.websocket``) owns the connections.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs, urlparse

from websockets.asyncio.server import ServerConnection

from replay import exchange_messages as em

VENUES: Final = (em.SPOT, em.FUTURES, em.COINBASE)
BINANCE_METHODS: Final = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
COINBASE_CHANNELS: Final = ("matches", "ticker", "heartbeat")

_STREAM_NAME = re.compile(r"^[!a-z0-9_]+@[A-Za-z0-9_@]+$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9]{1,36}$")
_BINANCE_PATH = re.compile(r"^/(?:(?:public|market)/)?(ws|stream)(?:/(.*))?$")


@dataclass(eq=False)
class Session:
    """One client connection: its endpoint and what it subscribed to (touched on the loop only)."""

    ws: ServerConnection
    venue: str
    combined: bool = False
    topics: dict[str, None] = field(default_factory=dict)
    """Binance stream names, or Coinbase ``channel:product``; a dict keeps subscription order."""


def route(path: str) -> tuple[str, bool, list[str]] | None:
    """(venue, combined, initial streams) for a request path, or None when nothing is served there."""
    parsed = urlparse(path)
    venue, _, rest = parsed.path.lstrip("/").partition("/")
    if venue == em.COINBASE:
        return (venue, False, []) if rest == "" else None
    if venue not in (em.SPOT, em.FUTURES):
        return None
    match = _BINANCE_PATH.match("/" + rest)
    if match is None:
        return None
    if match.group(1) == "stream":
        if match.group(2):
            return None
        streams = parse_qs(parsed.query).get("streams", [""])[0]
        return venue, True, [s for s in streams.split("/") if s]
    return venue, False, [s for s in (match.group(2) or "").split("/") if s]


def _binance_error(code: int, msg: str, request_id: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "msg": msg}
    if request_id is not None:
        error["id"] = request_id
    return error


def _valid_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0 <= value < 2**63
    return value is None or (isinstance(value, str) and _REQUEST_ID.match(value) is not None)


def binance_reply(session: Session, text: str | bytes) -> dict[str, Any]:
    """Apply one Binance request to a session; the reply the exchange documents for it."""
    try:
        msg = json.loads(text)
    except ValueError as e:
        where = f" at line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        return _binance_error(3, f"Invalid JSON: {getattr(e, 'msg', str(e))}{where}")
    if not isinstance(msg, dict):
        return _binance_error(2, "Invalid request: expected a JSON object")
    if "method" not in msg:
        return _binance_error(2, "Invalid request: missing field `method`")
    request_id = msg.get("id")
    if not _valid_id(request_id):
        return _binance_error(2, "Invalid request: request ID must be an unsigned integer")
    method = msg["method"]
    if method not in BINANCE_METHODS:
        variants = ", ".join(f"`{m}`" for m in BINANCE_METHODS)
        return _binance_error(
            2, f"Invalid request: unknown variant `{method}`, expected one of {variants}", request_id
        )
    params = msg.get("params", [])
    if not isinstance(params, list):
        return _binance_error(2, "Invalid request: params must be a list", request_id)
    if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
        if not all(isinstance(p, str) and _STREAM_NAME.match(p) for p in params):
            return _binance_error(2, "Invalid request: invalid stream name", request_id)
        for stream in params:
            if method == "SUBSCRIBE":
                session.topics[stream] = None
            else:
                session.topics.pop(stream, None)
        return {"result": None, "id": request_id}
    if method == "LIST_SUBSCRIPTIONS":
        return {"result": list(session.topics), "id": request_id}
    expected = 2 if method == "SET_PROPERTY" else 1
    if len(params) > expected:
        return _binance_error(2, "Invalid request: too many parameters", request_id)
    if not params or not isinstance(params[0], str):
        return _binance_error(2, "Invalid request: property name must be a string", request_id)
    if params[0] != "combined":
        return _binance_error(0, "Unknown property", request_id)
    if method == "GET_PROPERTY":
        return {"result": session.combined, "id": request_id}
    if len(params) < 2 or not isinstance(params[1], bool):
        return _binance_error(1, "Invalid value type: expected Boolean", request_id)
    session.combined = params[1]
    return {"result": None, "id": request_id}


def _coinbase_error(reason: str, message: str = "Failed to subscribe") -> dict[str, Any]:
    return {"type": "error", "message": message, "reason": reason}


def coinbase_request(session: Session, text: str | bytes) -> tuple[dict[str, Any], list[str]]:
    """Apply one Coinbase request to a session: (the reply, products newly subscribed to ``matches``)."""
    try:
        msg = json.loads(text)
    except ValueError:
        return _coinbase_error("malformed JSON", "Malformed JSON"), []
    if not isinstance(msg, dict) or msg.get("type") not in ("subscribe", "unsubscribe"):
        return _coinbase_error("type must be subscribe or unsubscribe", "Failed to parse request"), []
    products = msg.get("product_ids", [])
    channels = msg.get("channels")
    if not isinstance(products, list) or not isinstance(channels, list) or not channels:
        return _coinbase_error("product_ids and channels must be lists; name at least one channel"), []
    wanted: list[str] = []
    for channel in channels:
        name, ids = (
            (channel.get("name"), channel.get("product_ids", products))
            if isinstance(channel, dict)
            else (channel, products)
        )
        if name not in COINBASE_CHANNELS:
            return _coinbase_error(
                f"{name} is not a replayed channel; the replay serves {', '.join(COINBASE_CHANNELS)}"
            ), []
        if not isinstance(ids, list) or not ids or not all(isinstance(p, str) for p in ids):
            return _coinbase_error(f"You need to specify at least one product ID for channel {name}"), []
        wanted += [f"{name}:{p}" for p in ids]
    fresh: list[str] = []
    for topic in wanted:
        if msg["type"] == "unsubscribe":
            session.topics.pop(topic, None)
        elif topic not in session.topics:
            session.topics[topic] = None
            if topic.startswith("matches:"):
                fresh.append(topic.partition(":")[2])
    names: dict[str, list[str]] = {}
    for topic in session.topics:
        name, _, product = topic.partition(":")
        names.setdefault(name, []).append(product)
    reply = {"type": "subscriptions", "channels": [{"name": n, "product_ids": p} for n, p in names.items()]}
    return reply, fresh
