"""The instruments a synthetic market trades: price levels, volumes, ticks and symbol spellings.

Figures at scale 1.0 are near real daily activity (trades per day on each venue); anything not listed
falls back to modest defaults so any base asset can be simulated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from core.errors import ConfigError

EXCHANGES: Final = ("binance", "binance-futures", "coinbase")
DAY_US: Final = 86_400_000_000
SIZE_SIGMA: Final = 1.4
"""Log-normal sigma of trade notionals (median per venue below)."""
_QUOTES: Final = ("FDUSD", "USDT", "USDC", "USD")


@dataclass(frozen=True)
class Asset:
    """A base asset: its price level and daily volatility (shared by every venue that lists it)."""

    name: str
    price: float
    daily_vol: float


@dataclass(frozen=True)
class Instrument:
    """One (exchange, symbol) the generator emits, with its microstructure parameters."""

    index: int
    asset: Asset
    exchange: str
    symbol: str
    trades_per_day: float
    quotes_per_trade: float
    median_notional: float
    tick: float
    lot: float
    basis_bps: float
    base_spread_ticks: float


ASSETS: Final = {
    "BTC": Asset("BTC", 95_000.0, 0.025),
    "ETH": Asset("ETH", 3_300.0, 0.035),
    "SOL": Asset("SOL", 190.0, 0.05),
}
_DEFAULT_ASSET_PRICE = 10.0
_DEFAULT_ASSET_VOL = 0.06

# trades per day at scale 1.0, by venue and asset (default for unlisted assets under None)
_TRADES_PER_DAY: Final[dict[str, dict[str | None, float]]] = {
    "binance": {"BTC": 3.0e6, "ETH": 4.0e6, "SOL": 1.5e6, None: 0.5e6},
    "binance-futures": {"BTC": 6.0e6, "ETH": 4.5e6, "SOL": 2.0e6, None: 0.8e6},
    "coinbase": {"BTC": 0.6e6, "ETH": 0.5e6, "SOL": 0.35e6, None: 0.1e6},
}
_VENUE: Final[dict[str, dict[str, float]]] = {
    # median trade notional (USD), basis to the shared price path (bps), quotes per trade
    "binance": {"median": 250.0, "basis": 0.0, "quotes": 0.6},
    "binance-futures": {"median": 800.0, "basis": 4.0, "quotes": 0.6},
    "coinbase": {"median": 400.0, "basis": 2.0, "quotes": 0.8},
}
_LOT: Final = {"BTC": 1e-5, "ETH": 1e-4, "SOL": 1e-3}


def base_asset(symbol: str) -> str:
    """The base asset of ``BTCUSDT`` or ``BTC-USD`` (``BTC``)."""
    s = symbol.strip().upper()
    if "-" in s:
        return s.split("-", 1)[0]
    for quote in _QUOTES:
        if s.endswith(quote) and len(s) > len(quote):
            return s[: -len(quote)]
    raise ConfigError(f"symbol {symbol!r}: expected BASEUSDT or BASE-USD, e.g. BTCUSDT")


def venue_symbol(asset: str, exchange: str) -> str:
    """The exchange-native spelling: ``BTCUSDT`` on Binance, ``BTC-USD`` on Coinbase."""
    return f"{asset}-USD" if exchange == "coinbase" else f"{asset}USDT"


def instruments(symbols: list[str], exchanges: list[str]) -> list[Instrument]:
    """Every (asset, exchange) pair, in the order symbols x exchanges; indices are positions."""
    bad = [e for e in exchanges if e not in EXCHANGES]
    if bad:
        raise ConfigError(f"unknown exchanges {bad}; choose from {', '.join(EXCHANGES)}")
    if not symbols or not exchanges:
        raise ConfigError("give at least one symbol and one exchange")
    names = list(dict.fromkeys(base_asset(s) for s in symbols))
    out: list[Instrument] = []
    for name in names:
        asset = ASSETS.get(name, Asset(name, _DEFAULT_ASSET_PRICE, _DEFAULT_ASSET_VOL))
        for exchange in exchanges:
            venue = _VENUE[exchange]
            per_day = _TRADES_PER_DAY[exchange]
            tick = 0.1 if (exchange == "binance-futures" and name == "BTC") else 0.01
            out.append(
                Instrument(
                    index=len(out),
                    asset=asset,
                    exchange=exchange,
                    symbol=venue_symbol(name, exchange),
                    trades_per_day=per_day.get(name, per_day[None]),
                    quotes_per_trade=venue["quotes"],
                    median_notional=venue["median"],
                    tick=tick,
                    lot=_LOT.get(name, 0.01),
                    basis_bps=venue["basis"],
                    base_spread_ticks=1.0,
                )
            )
    return out


def intraday_factor(ts: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Activity multiplier by UTC time of day (mean 1 over a day, peak at 15:00, trough at 03:00)."""
    hours = (ts % DAY_US) / 3_600_000_000
    out: npt.NDArray[np.float64] = 1.0 + 0.45 * np.cos(2 * np.pi * (hours - 15.0) / 24.0)
    return out
