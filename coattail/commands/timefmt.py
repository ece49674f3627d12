"""Times on the command line and in reports: int64 µs since the epoch (UTC) from and to text.

Not a command module (it has no ``register``): the commands and the report share these helpers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from pipeline.errors import ConfigError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(text: str, option: str) -> int:
    """``--from``/``--to``: an ISO-8601 time (UTC when no zone is given) or integer µs since the epoch."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise ConfigError(
            f"{option} {text!r}: expected ISO-8601 (2026-01-01T00:00Z) or µs since the epoch"
        ) from e
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # timedelta arithmetic is exact; ``timestamp()`` goes through a float
    return (moment - _EPOCH) // timedelta(microseconds=1)


def format_us(us: int | None, timespec: Literal["seconds", "microseconds"] = "microseconds") -> str:
    """``us`` as ``2026-01-01T00:00:00.000000Z`` (``timespec="seconds"``: no fraction); ``""`` for None."""
    if us is None:
        return ""
    moment = _EPOCH + timedelta(microseconds=us)
    return moment.replace(tzinfo=None).isoformat(timespec=timespec) + "Z"
