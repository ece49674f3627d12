"""Times as text, one implementation for every part: int64 µs since the epoch (UTC) from and to text.

``parse_iso_us`` is the only ISO-8601 parser of the project: connectors (exchange messages), the
command line (``--from``, ``--start``) and the reports all go through it, so they agree on zones, the
``Z`` suffix and exact microseconds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from core.errors import ConfigError

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
US_PER: Final = {"d": 86_400_000_000, "h": 3_600_000_000, "m": 60_000_000, "s": 1_000_000}
_PART: Final = re.compile(r"(\d+(?:\.\d+)?)([dhms])")


def parse_iso_us(text: str) -> int:
    """An ISO-8601 time (``2026-01-01T00:00Z``, ``...+01:00``; no zone means UTC) as epoch µs, exactly.

    Raises ``ValueError`` naming the text; callers turn it into their own error class.
    """
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # timedelta arithmetic is exact; ``timestamp()`` goes through a float
    return (moment - _EPOCH) // timedelta(microseconds=1)


def parse_time(text: str, option: str) -> int:
    """A command-line time: ISO-8601 (UTC when no zone is given) or integer µs since the epoch."""
    text = text.strip()
    if text.isascii() and text.lstrip("-").isdigit():  # isdigit() alone also takes "²"
        return int(text)
    try:
        return parse_iso_us(text)
    except ValueError as e:
        raise ConfigError(
            f"{option} {text!r}: expected ISO-8601 (2026-01-01T00:00Z) or µs since the epoch"
        ) from e


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


def format_us(us: int | None, timespec: Literal["seconds", "microseconds"] = "microseconds") -> str:
    """``us`` as ``2026-01-01T00:00:00.000000Z`` (``timespec="seconds"``: no fraction); ``""`` for None."""
    if us is None:
        return ""
    moment = _EPOCH + timedelta(microseconds=us)
    return moment.replace(tzinfo=None).isoformat(timespec=timespec) + "Z"
