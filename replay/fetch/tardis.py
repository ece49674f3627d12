"""Tardis.dev's downloadable CSV datasets: ``<base>/v1/<exchange>/<data type>/YYYY/MM/DD/<SYMBOL>.csv.gz``.

The first day of each month is free; every other day needs an API key (``TARDIS_API_KEY``), sent as a
bearer token and never printed. Tardis publishes no checksums, so a download is verified by reading the
whole gzip stream (its CRC and length trailer).
"""

from __future__ import annotations

import gzip
import re
import zlib
from datetime import date
from pathlib import Path

from replay.fetch.base import Archive, ChecksumMismatch, FetchError, Remote
from replay.fetch.settings import TARDIS_KEY_ENV

# our markets named the Binance way; any other Tardis exchange id (coinbase, bybit ...) is used as is
_EXCHANGE = {"spot": "binance", "usdm": "binance-futures"}
_EXCHANGE_ID = re.compile(r"^[a-z0-9-]+$")


class TardisArchive(Archive):
    """datasets.tardis.dev, or a mirror of its layout at ``settings.tardis_url``."""

    name = "tardis"
    markets = ()  # any Tardis exchange id; spot and usdm name Binance's
    kinds = ("trades", "quotes")
    default_kinds = ("trades", "quotes")

    def remotes(
        self, market: str, symbol: str, kind: str, days: list[date], *, monthly: bool
    ) -> list[Remote]:
        """One file a day; without an API key only first days of a month are allowed."""
        exchange = _EXCHANGE.get(market, market)
        if not _EXCHANGE_ID.match(exchange):
            raise FetchError(f"{market!r} is not a Tardis exchange id (like binance-futures, coinbase)")
        key = self.settings.tardis_api_key
        if key is None:
            paid = [d.isoformat() for d in days if d.day != 1]
            if paid:
                raise FetchError(
                    f"Tardis serves only the first day of a month without an API key; {', '.join(paid[:5])}"
                    f"{' ...' if len(paid) > 5 else ''} need one: set {TARDIS_KEY_ENV}, or fetch --from "
                    "and --to on the 1st"
                )
        headers = {} if key is None else {"Authorization": f"Bearer {key.get_secret_value()}"}
        base = self.settings.tardis_url.rstrip("/")
        return [
            Remote(
                source=self.name,
                market=exchange,
                symbol=symbol,
                kind=kind,
                period=d.isoformat(),
                url=f"{base}/v1/{exchange}/{kind}/{d:%Y/%m/%d}/{symbol}.csv.gz",
                filename=f"{exchange}_{kind}_{d.isoformat()}_{symbol}.csv.gz",
                headers=headers,
            )
            for d in days
        ]

    def verify_content(self, remote: Remote, path: Path) -> None:
        """Read the whole gzip stream: a truncated or corrupt download fails its CRC or length check."""
        try:
            with gzip.open(path, "rb") as fh:
                while fh.read(1 << 20):
                    pass
        except (OSError, EOFError, zlib.error) as e:
            raise ChecksumMismatch(
                f"{remote.filename} from {remote.url} is not an intact gzip file ({e}); it was deleted, "
                "fetch again"
            ) from e
