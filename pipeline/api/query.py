"""The parameters of ``GET /alerts`` and ``GET /symbols/{symbol}/summary``, checked, and the opaque
cursor: DynamoDB's key of the last alert returned, bound to the query it came from."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from core.errors import ConfigError
from core.timefmt import parse_time
from pipeline.api.http import bad_parameter

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
FILTERS: Final = ("symbol", "detector", "kind", "severity")
LIST_PARAMETERS: Final = (*FILTERS, "from", "to", "limit", "cursor")
_MAX_TEXT: Final = 128


@dataclass(frozen=True)
class AlertQuery:
    """``GET /alerts``: equality filters, an event-time range (µs, both ends included), a page size and
    where the previous page ended (a DynamoDB ``ExclusiveStartKey``)."""

    symbol: str | None = None
    detector: str | None = None
    kind: str | None = None
    severity: str | None = None
    start: int | None = None
    end: int | None = None
    limit: int = DEFAULT_LIMIT
    after: dict[str, Any] | None = None

    @property
    def fingerprint(self) -> str:
        """What identifies the query apart from its page: a cursor is valid for this query alone."""
        shape = [self.symbol, self.detector, self.kind, self.severity, self.start, self.end]
        return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]

    def cursor(self, key: Mapping[str, Any]) -> str:
        """The opaque cursor of the page after the alert whose DynamoDB key is ``key``."""
        raw = json.dumps({"q": self.fingerprint, "k": dict(key)}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def text_parameter(query: Mapping[str, str], name: str) -> str | None:
    """A text parameter: absent is None; present, it is 1 to 128 printable characters."""
    value = query.get(name)
    if value is None:
        return None
    if not value or len(value) > _MAX_TEXT or not value.isprintable():
        raise bad_parameter(name, f"expected 1 to {_MAX_TEXT} printable characters, got {value!r}")
    return value


def time_parameter(query: Mapping[str, str], name: str) -> int | None:
    """A time: ISO-8601 (UTC when no zone is given) or integer µs since the epoch."""
    value = query.get(name)
    if value is None:
        return None
    try:
        return parse_time(value, name)
    except ConfigError as e:
        expected = "ISO-8601 (2026-01-01T00:00Z) or µs since the epoch"
        raise bad_parameter(name, f"expected {expected}, got {value!r}") from e


def parse_alert_query(query: Mapping[str, str]) -> AlertQuery:
    """The checked parameters of ``GET /alerts`` (400 naming the first bad one)."""
    for name in query:
        if name not in LIST_PARAMETERS:
            raise bad_parameter(name, f"unknown parameter; GET /alerts takes {', '.join(LIST_PARAMETERS)}")
    start, end = time_parameter(query, "from"), time_parameter(query, "to")
    if start is not None and end is not None and start > end:
        raise bad_parameter("from", "is later than to")
    parsed = AlertQuery(
        symbol=text_parameter(query, "symbol"),
        detector=text_parameter(query, "detector"),
        kind=text_parameter(query, "kind"),
        severity=text_parameter(query, "severity"),
        start=start,
        end=end,
        limit=_limit(query.get("limit")),
    )
    text = query.get("cursor")
    if text is None:
        return parsed
    return replace(parsed, after=_decode_cursor(text, parsed.fingerprint))


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LIMIT:
        raise bad_parameter("limit", f"expected an integer from 1 to {MAX_LIMIT}, got {text!r}")
    return int(text)


def _decode_cursor(text: str, fingerprint: str) -> dict[str, Any]:
    """The DynamoDB key a cursor holds; 400 when it is not one of ours or belongs to another query."""
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError) as e:
        raise bad_parameter("cursor", "not a cursor this API returned; start again without it") from e
    key = data.get("k") if isinstance(data, dict) else None
    if not isinstance(key, dict) or not all(_is_key_value(v) for v in key.values()):
        raise bad_parameter("cursor", "not a cursor this API returned; start again without it")
    if data.get("q") != fingerprint:
        raise bad_parameter("cursor", "belongs to a query with other filters; repeat that query's filters")
    return key


def _is_key_value(value: Any) -> bool:
    """A DynamoDB key attribute value: ``{"S": text}`` or ``{"N": text}``."""
    return (
        isinstance(value, dict)
        and len(value) == 1
        and all(t in ("S", "N") and isinstance(v, str) for t, v in value.items())
    )
