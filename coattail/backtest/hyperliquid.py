"""Orders shaped as Hyperliquid order actions, so a later live engine consumes the same objects.

Nothing here sends anything anywhere: the backtest builds the action, checks it against the exchange's
rules and fills it against the replayed market. The rules (Hyperliquid's API documentation, "Tick and
lot size" and "Exchange endpoint"):

- ``asset_index``: the order's ``a`` is the instrument's asset index from the registry
  (``config/instruments.yaml`` ``hl_asset``).
- ``size_decimals``: the size ``s`` is positive with at most ``szDecimals`` decimals (``hl_sz_decimals``).
- ``price_significant_figures``: the price ``p`` has at most 5 significant figures, unless an integer.
- ``price_decimals``: ``p`` has at most ``6 - szDecimals`` decimals (perpetuals), ``8 - szDecimals`` (spot).
- ``min_value``: ``p * s`` is at least 10 USD.
- ``ioc``: a market order is an immediate-or-cancel limit order (``tif = "Ioc"``).
- ``slippage_bound``: its limit lies within ``slippage_bps`` of the reference price, on the order's side.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from typing import Any, Final

from core.errors import CoattailError
from pipeline.instruments import Instrument

MAX_SIGNIFICANT: Final = 5
MAX_DECIMALS: Final = {"perpetual": 6, "spot": 8}
MIN_VALUE_USD: Final = Decimal(10)
RULES: Final = ("asset_index", "size_decimals", "price_significant_figures", "price_decimals", "min_value",
                "ioc", "slippage_bound")


class OrderRejected(CoattailError):
    """An order action that breaks one of Hyperliquid's rules; ``rule`` names it (one of ``RULES``)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"order rejected ({rule}): {message}")
        self.rule = rule


@dataclass(frozen=True)
class Order:
    """One order of an order action, as Hyperliquid's wire format names its fields."""

    asset: int
    is_buy: bool
    price: str
    size: str
    reduce_only: bool = False
    tif: str = "Ioc"

    def wire(self) -> dict[str, Any]:
        """The order as the ``orders`` element of an action."""
        return {"a": self.asset, "b": self.is_buy, "p": self.price, "s": self.size, "r": self.reduce_only,
                "t": {"limit": {"tif": self.tif}}}


def order_action(orders: list[Order]) -> dict[str, Any]:
    """The ``order`` action holding ``orders`` (never signed, never sent)."""
    return {"type": "order", "orders": [o.wire() for o in orders], "grouping": "na"}


def _text(value: Decimal) -> str:
    """Hyperliquid's wire text of a number: no exponent, no trailing zeros."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(-exponent, 0) if isinstance(exponent, int) else 0


def _significant(value: Decimal) -> int:
    return len(value.normalize().as_tuple().digits)


def hl_instrument(inst: Instrument) -> tuple[int, int]:
    """The asset index and ``szDecimals`` of a Hyperliquid instrument; ``asset_index`` when missing."""
    if inst.hl_asset is None or inst.hl_sz_decimals is None:
        raise OrderRejected("asset_index", f"{inst.exchange}:{inst.symbol} has no hl_asset / hl_sz_decimals "
                            "in config/instruments.yaml; orders go to a Hyperliquid instrument")
    return inst.hl_asset, inst.hl_sz_decimals


def slippage_bound(is_buy: bool, reference: float, slippage_bps: float) -> Decimal:
    """The farthest limit a market order may have: ``reference`` moved ``slippage_bps`` against it."""
    move = Decimal(repr(slippage_bps)) / Decimal(10_000)
    return Decimal(repr(reference)) * (1 + move if is_buy else 1 - move)


def limit_price(inst: Instrument, is_buy: bool, reference: float, slippage_bps: float) -> Decimal:
    """The IOC limit of a market order: ``reference`` moved ``slippage_bps`` against the order, then
    rounded toward the reference to 5 significant figures and the allowed decimals (so it stays within
    the bound)."""
    _, sz = hl_instrument(inst)
    raw = slippage_bound(is_buy, reference, slippage_bps)
    toward = ROUND_FLOOR if is_buy else ROUND_CEILING
    digits = raw.adjusted() + 1  # digits before the point
    sig = raw.quantize(Decimal(1).scaleb(min(digits - MAX_SIGNIFICANT, 0)), rounding=toward)
    return sig.quantize(Decimal(1).scaleb(-(MAX_DECIMALS[inst.market] - sz)), rounding=toward)


def market_order(
    inst: Instrument, is_buy: bool, size: float, reference: float, slippage_bps: float,
    reduce_only: bool = False,
) -> Order:
    """A market order of ``size`` units (rounded down to ``szDecimals``) as an IOC limit order within
    ``slippage_bps`` of ``reference``; checked (``OrderRejected`` names the rule it breaks)."""
    asset, sz = hl_instrument(inst)
    rounded = Decimal(repr(size)).quantize(Decimal(1).scaleb(-sz), rounding=ROUND_DOWN)
    order = Order(asset, is_buy, _text(limit_price(inst, is_buy, reference, slippage_bps)), _text(rounded),
                  reduce_only)
    check_order(order, inst, reference, slippage_bps)
    return order


def check_order(order: Order, inst: Instrument, reference: float, slippage_bps: float) -> None:
    """Raise ``OrderRejected`` naming the first rule of the module docstring that ``order`` breaks."""
    asset, sz = hl_instrument(inst)
    if order.asset != asset:
        raise OrderRejected("asset_index", f"asset {order.asset} is not {inst.symbol}'s index {asset}")
    size, price = Decimal(order.size), Decimal(order.price)
    if size <= 0 or _decimals(size) > sz:
        raise OrderRejected("size_decimals", f"size {order.size} must be positive with at most {sz} decimals")
    if price != price.to_integral_value() and _significant(price) > MAX_SIGNIFICANT:
        raise OrderRejected("price_significant_figures",
                            f"price {order.price} has more than {MAX_SIGNIFICANT} significant figures")
    allowed = MAX_DECIMALS[inst.market] - sz
    if _decimals(price) > allowed:
        raise OrderRejected("price_decimals", f"price {order.price} has more than {allowed} decimals "
                            f"({MAX_DECIMALS[inst.market]} - szDecimals {sz})")
    if price * size < MIN_VALUE_USD:
        raise OrderRejected("min_value", f"order value {price * size} is below {MIN_VALUE_USD} USD")
    if order.tif != "Ioc":
        raise OrderRejected("ioc", f"a market order is an IOC limit order, not tif {order.tif!r}")
    bound = slippage_bound(order.is_buy, reference, slippage_bps)
    if (order.is_buy and price > bound) or (not order.is_buy and price < bound):
        raise OrderRejected("slippage_bound", f"limit {order.price} is beyond {slippage_bps} bps of the "
                            f"reference price {reference}")
