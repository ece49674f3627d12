"""The instrument registry (``config/instruments.yaml``): what each traded instrument is.

Per instrument ``(exchange, symbol)``: its asset, quote currency, market type (spot, perpetual), tick
and lot size and, for Hyperliquid perpetuals, the asset index and size decimals its order actions use.
Every part that needs one of these facts reads it here: USD notional (the sequencer and the Polars
reference), the cross-instrument and on-chain modules (instruments of one asset) and the backtest.
Nothing infers a quote currency from a symbol's spelling: an instrument missing from the registry has
no quote currency, so its trades carry no USD notional (and ``unknown_instruments`` names it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import cached_property
from typing import Literal

from pydantic import Field, model_validator

from core.frozen import Frozen

MarketType = Literal["spot", "perpetual"]
InstrumentKey = tuple[str, str]
"""``(exchange, symbol)``, as events name an instrument."""


class Instrument(Frozen):
    """One tradable instrument on one exchange."""

    exchange: str
    symbol: str
    asset: str
    """The base asset (``BTC``), shared by every instrument of it across exchanges and markets."""
    quote: str
    """The quote currency (``USDT``); its USD rate is ``InstrumentsConfig.quote_usd[quote]``."""
    market: MarketType
    tick_size: float | None = Field(None, gt=0)
    """Price increment; ``None`` where the venue sets none (Hyperliquid: significant figures)."""
    lot_size: float | None = Field(None, gt=0)
    """Quantity increment."""
    hl_asset: int | None = Field(None, ge=0)
    """Hyperliquid's asset index (the ``a`` of an order action); Hyperliquid instruments only."""
    hl_sz_decimals: int | None = Field(None, ge=0)
    """Hyperliquid's ``szDecimals``: order sizes are rounded to this many decimals."""

    @property
    def key(self) -> InstrumentKey:
        """``(exchange, symbol)``."""
        return (self.exchange, self.symbol)


class InstrumentsConfig(Frozen):
    """The shape of ``config/instruments.yaml`` and the lookups every module uses."""

    quote_usd: dict[str, float] = Field(default_factory=dict)
    """USD value of one unit of each quote currency that has one (stablecoins at 1.0)."""
    reference: dict[str, InstrumentKey] = Field(default_factory=dict)
    """Per asset, the instrument whose price stands for the asset's (USD value of transfers, forward
    returns of asset-level signals)."""
    instruments: tuple[Instrument, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> InstrumentsConfig:
        seen: set[InstrumentKey] = set()
        for inst in self.instruments:
            if inst.key in seen:
                raise ValueError(f"instrument {inst.exchange}:{inst.symbol} is listed twice")
            seen.add(inst.key)
        for asset, key in self.reference.items():
            ref = self._index.get((key[0], key[1]))
            if ref is None or ref.asset != asset:
                raise ValueError(f"reference instrument of {asset}, {key[0]}:{key[1]}, is not an instrument "
                                 f"of {asset} in the list")
        return self

    @cached_property
    def _index(self) -> dict[InstrumentKey, Instrument]:
        return {inst.key: inst for inst in self.instruments}

    def get(self, exchange: str, symbol: str) -> Instrument | None:
        """The instrument, or ``None`` when the registry does not list it."""
        return self._index.get((exchange, symbol))

    def quote_of(self, exchange: str, symbol: str) -> str:
        """The instrument's quote currency; ``""`` when the instrument is not listed."""
        inst = self._index.get((exchange, symbol))
        return inst.quote if inst is not None else ""

    def usd_rate(self, exchange: str, symbol: str) -> float:
        """USD per unit of the instrument's quote currency; NaN when unknown (no USD notional)."""
        return self.quote_usd.get(self.quote_of(exchange, symbol), math.nan)

    def asset_of(self, exchange: str, symbol: str) -> str | None:
        """The instrument's base asset, ``None`` when not listed."""
        inst = self._index.get((exchange, symbol))
        return inst.asset if inst is not None else None

    def of_asset(self, asset: str) -> list[Instrument]:
        """Every listed instrument of one asset, in list order."""
        return [inst for inst in self.instruments if inst.asset == asset]

    def hyperliquid(self, asset: str) -> Instrument | None:
        """The Hyperliquid perpetual of an asset (where orders of the backtest would go), if listed."""
        for inst in self.of_asset(asset):
            if inst.hl_asset is not None:
                return inst
        return None

    def unknown_instruments(self, keys: Iterable[InstrumentKey]) -> list[InstrumentKey]:
        """The keys the registry does not list (sorted): their trades have no USD notional."""
        return sorted({k for k in keys if k not in self._index})

    def listed_names(self, keys: Iterable[InstrumentKey]) -> list[str]:
        """``exchange:symbol`` of the keys the registry lists, in their order: what a run's tapes give
        the tier's ``instruments`` (the participants of the asset and global stage)."""
        return [f"{ex}:{sym}" for ex, sym in keys if (ex, sym) in self._index]
