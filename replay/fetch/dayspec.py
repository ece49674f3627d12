"""Day specs, ``SOURCE[/MARKET]:SYMBOL[,SYMBOL...]:DAY[..DAY]``: what ``coattail run --day`` fetches.

``binance:BTCUSDT:2024-01-01`` is one day of Binance spot BTCUSDT trades;
``binance/usdm:BTCUSDT,ETHUSDT:2024-01-01..2024-01-03`` three days of two USD-M futures symbols.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from core.errors import ConfigError
from replay.fetch.days import day_range, parse_day

_SYMBOL = re.compile(r"^[A-Za-z0-9_-]+$")
# no square brackets: the message is printed through rich, which reads them as markup
_FORMAT = "SOURCE:SYMBOL:DAY like binance:BTCUSDT:2024-01-01 or binance/usdm:BTCUSDT,ETHUSDT:FROM..TO"


@dataclass(frozen=True)
class DaySpec:
    """A parsed day spec."""

    source: str
    market: str
    symbols: tuple[str, ...]
    days: tuple[date, ...]

    @property
    def slug(self) -> str:
        """A file-name-safe name of what the spec covers (the tape directory's name)."""
        span = self.days[0].isoformat() + (f"_{self.days[-1].isoformat()}" if len(self.days) > 1 else "")
        return f"{self.source}-{self.market}-{'-'.join(self.symbols)}-{span}"


def parse_day_spec(text: str, default_market: str = "spot") -> DaySpec:
    """Parse ``text``; a ``ConfigError`` shows the expected format."""
    parts = text.strip().split(":")
    if len(parts) != 3 or not all(parts):
        raise ConfigError(f"day spec {text!r}: expected {_FORMAT}")
    where, symbols_text, span = parts
    source, _, market = where.partition("/")
    symbols = tuple(s.strip().upper() for s in symbols_text.split(","))
    bad = [s for s in symbols if not _SYMBOL.match(s)]
    if bad:
        raise ConfigError(f"day spec {text!r}: {bad[0]!r} is not a symbol; expected {_FORMAT}")
    first, dots, last = span.partition("..")
    start = parse_day(first, f"day spec {text!r}: day")
    end = parse_day(last, f"day spec {text!r}: day") if dots else start
    return DaySpec(source.lower(), market or default_market, symbols, tuple(day_range(start, end)))
