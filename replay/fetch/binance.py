"""Binance's public data archive (data.binance.vision): daily and monthly zip files, each with a
published ``.CHECKSUM`` file (``<sha256>  <file name>``).

Layout: ``<base>/data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2024-01-01.zip``; USD-M futures live
under ``data/futures/um/``, monthly files under ``monthly/`` and are named by ``2024-01``. Spot publishes
``trades`` and ``aggTrades``; USD-M also ``bookTicker``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from replay.fetch.base import Archive, FetchError, Remote
from replay.fetch.days import whole_months

_MARKET_PATH = {"spot": "spot", "usdm": "futures/um"}
_KINDS = {"spot": ("trades", "aggTrades"), "usdm": ("trades", "aggTrades", "bookTicker")}


class BinanceArchive(Archive):
    """data.binance.vision, or a mirror of its layout at ``settings.binance_url``."""

    name = "binance"
    markets = ("spot", "usdm")
    kinds = ("trades", "aggTrades", "bookTicker")
    default_kinds = ("trades",)

    def remotes(
        self, market: str, symbol: str, kind: str, days: list[date], *, monthly: bool
    ) -> list[Remote]:
        """One file a day, or a month's file for each whole calendar month when ``monthly``."""
        if kind not in _KINDS[market]:
            raise FetchError(
                f"binance {market} publishes no {kind} files; choose from {', '.join(_KINDS[market])}"
            )
        months, rest = whole_months(days) if monthly else ([], days)
        periods = [("monthly", m.strftime("%Y-%m")) for m in months]
        periods += [("daily", d.isoformat()) for d in rest]
        return [
            self._remote(market, symbol, kind, freq, period)
            for freq, period in sorted(periods, key=lambda p: p[1])
        ]

    def _remote(self, market: str, symbol: str, kind: str, freq: str, period: str) -> Remote:
        filename = f"{symbol}-{kind}-{period}.zip"
        url = f"{self.settings.binance_url.rstrip('/')}/data/{_MARKET_PATH[market]}/{freq}/{kind}/{symbol}/"
        return Remote(
            source=self.name,
            market=market,
            symbol=symbol,
            kind=kind,
            period=period,
            url=url + filename,
            filename=filename,
            checksum_url=url + filename + ".CHECKSUM",
        )

    def verify_content(self, remote: Remote, path: Path) -> None:
        """Nothing beyond the published SHA-256, which every Binance file has."""
