"""Parsing the command line's times: durations like ``1d``, ``2h``, ``1h30m`` and ISO start times."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pipeline.errors import ConfigError

US_PER = {"d": 86_400_000_000, "h": 3_600_000_000, "m": 60_000_000, "s": 1_000_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")


def parse_duration(text: str) -> int:
    """``1d``, ``2h``, ``30m``, ``1h30m``, ``90s`` as microseconds; anything else is a ``ConfigError``."""
    s = text.strip().lower()
    parts = _PART.findall(s)
    if not s or "".join(n + u for n, u in parts) != s:
        raise ConfigError(f"duration {text!r}: write it like 1d, 2h, 30m, 1h30m or 90s")
    total = sum(round(float(n) * US_PER[u]) for n, u in parts)
    if total <= 0:
        raise ConfigError(f"duration {text!r} must be positive")
    return total


def parse_start(text: str) -> int:
    """An ISO-8601 time (``2026-01-01T00:00Z``; no zone means UTC) as epoch microseconds."""
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError as e:
        raise ConfigError(f"start {text!r}: expected an ISO-8601 time such as 2026-01-01T00:00Z") from e
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond
