"""Small conversions shared by the exchange message parsers (numbers and times as exchanges send them)."""

from __future__ import annotations

import math
from typing import Any

from core.errors import SchemaError
from core.timefmt import parse_iso_us

# Plausible event times, as epoch values in each unit: 2000-01-01 .. 2100-01-01.
_MS_RANGE = (946_684_800_000, 4_102_444_800_000)
_US_RANGE = (_MS_RANGE[0] * 1000, _MS_RANGE[1] * 1000)


def to_float(value: Any, field: str) -> float:
    """A decimal string or number as float; anything else (or NaN/inf) is a ``SchemaError``."""
    if isinstance(value, bool):
        raise SchemaError(f"field {field!r}: expected a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError) as e:
        raise SchemaError(f"field {field!r}: expected a number, got {value!r}") from e
    if not math.isfinite(out):
        raise SchemaError(f"field {field!r}: expected a finite number, got {value!r}")
    return out


def to_int(value: Any, field: str) -> int:
    """An integer (or an integral string); anything else is a ``SchemaError``."""
    if isinstance(value, bool):
        raise SchemaError(f"field {field!r}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except (TypeError, ValueError) as e:
        raise SchemaError(f"field {field!r}: expected an integer, got {value!r}") from e


def epoch_to_us(value: Any, field: str) -> int:
    """An epoch time in milliseconds or microseconds (told apart by magnitude) as microseconds.

    Binance sends milliseconds, or microseconds when asked to; a value in neither plausible range
    (years 2000-2100) is a ``SchemaError`` rather than a silently wrong time.
    """
    raw = to_int(value, field)
    if _MS_RANGE[0] <= raw < _MS_RANGE[1]:
        return raw * 1000
    if _US_RANGE[0] <= raw < _US_RANGE[1]:
        return raw
    raise SchemaError(f"field {field!r}: {raw} is not an epoch time in ms or µs between 2000 and 2100")


def iso_to_us(value: Any, field: str) -> int:
    """An ISO-8601 UTC time (``2021-04-17T16:43:37.089723Z``) as epoch microseconds."""
    if not isinstance(value, str):
        raise SchemaError(f"field {field!r}: expected an ISO-8601 time, got {value!r}")
    try:
        return parse_iso_us(value)
    except ValueError as e:
        raise SchemaError(f"field {field!r}: not an ISO-8601 time: {value!r}") from e


def require(msg: dict[str, Any], field: str) -> Any:
    """``msg[field]``, or a ``SchemaError`` naming the missing field."""
    try:
        return msg[field]
    except KeyError as e:
        raise SchemaError(f"message has no field {field!r}") from e
