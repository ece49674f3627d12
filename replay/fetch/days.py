"""Day ranges: the days from one date to another, and the whole calendar months among them."""

from __future__ import annotations

import calendar
from datetime import date, timedelta

from core.errors import ConfigError


def parse_day(text: str, what: str = "day") -> date:
    """A ``YYYY-MM-DD`` date, or a ``ConfigError`` naming ``what``."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError as e:
        raise ConfigError(f"{what} {text!r} is not a date like 2024-01-31") from e


def day_range(first: date, last: date) -> list[date]:
    """Every day from ``first`` to ``last``, both included."""
    if last < first:
        raise ConfigError(f"--to {last} is before --from {first}")
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def whole_months(days: list[date]) -> tuple[list[date], list[date]]:
    """The first days of the calendar months ``days`` covers entirely, and the days left over."""
    have = set(days)
    months = sorted(
        {
            d.replace(day=1)
            for d in days
            if all(d.replace(day=i) in have for i in range(1, calendar.monthrange(d.year, d.month)[1] + 1))
        }
    )
    month_set = {(m.year, m.month) for m in months}
    return months, [d for d in days if (d.year, d.month) not in month_set]
