"""Hyperliquid order actions: rounding (size to szDecimals, price to 5 significant figures and 6 or 8 minus
szDecimals decimals, toward the reference), and a rejection naming each rule."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coattail.backtest.hyperliquid import (
    RULES,
    Order,
    OrderRejected,
    check_order,
    limit_price,
    market_order,
    order_action,
)
from pipeline.config import ConfigLoader
from pipeline.instruments import Instrument

REGISTRY = ConfigLoader().load("small", env={}).instruments


def hyperliquid(asset: str) -> Instrument:
    inst = REGISTRY.hyperliquid(asset)
    assert inst is not None
    return inst


BTC, SOL = hyperliquid("BTC"), hyperliquid("SOL")
SPOT = SOL.model_copy(update={"market": "spot"})


def rejected(order: Order, inst: Instrument = BTC, reference: float = 60_000.0) -> str:
    with pytest.raises(OrderRejected) as info:
        check_order(order, inst, reference, 50.0)
    assert info.value.rule in RULES and info.value.rule in str(info.value)
    return info.value.rule


def test_a_market_order_is_an_ioc_action_with_registry_asset_and_rounded_size() -> None:
    order = market_order(BTC, True, 0.1234567, 61234.56, 50.0)
    assert order_action([order]) == {"type": "order", "grouping": "na", "orders": [
        {"a": 0, "b": True, "p": "61540", "s": "0.12345", "r": False, "t": {"limit": {"tif": "Ioc"}}}]}
    sell = market_order(SOL, False, 3.456, 142.3456, 50.0)
    assert (sell.asset, sell.size, sell.price) == (5, "3.45", "141.64")  # ceil toward the reference


def test_each_rule_rejects_by_name() -> None:
    good = Order(0, True, "60000", "0.001")
    check_order(good, BTC, 60_000.0, 50.0)
    assert rejected(Order(1, True, "60000", "0.001")) == "asset_index"
    assert rejected(Order(0, True, "60000", "0.000001")) == "size_decimals"
    assert rejected(Order(0, True, "60000", "0")) == "size_decimals"
    assert rejected(Order(5, True, "142.345", "1"), SOL, 142.3) == "price_significant_figures"
    assert rejected(Order(5, True, "1.23456", "10"), SOL, 1.2345) == "price_significant_figures"
    assert rejected(Order(5, True, "0.012345", "1000"), SOL, 0.01234) == "price_decimals"  # 6 - 2 = 4
    check_order(Order(5, True, "0.012345", "1000"), SPOT, 0.01234, 50.0)  # spot: 8 - 2 = 6 decimals
    assert rejected(Order(0, True, "60000", "0.0001")) == "min_value"  # 6 USD
    assert rejected(Order(0, True, "60000", "0.001", tif="Gtc")) == "ioc"
    assert rejected(Order(0, True, "60400", "0.001")) == "slippage_bound"  # 66.7 bps above
    assert rejected(Order(0, False, "59600", "0.001")) == "slippage_bound"
    check_order(Order(0, True, "123456", "0.001"), BTC, 123_456.0, 50.0)  # integers: any figures
    with pytest.raises(OrderRejected, match="min_value"):
        market_order(BTC, True, 0.0001, 60_000.0, 50.0)


@given(reference=st.floats(1.0, 200_000.0), bps=st.floats(1.0, 500.0), is_buy=st.booleans(),
       sz=st.sampled_from([0, 2, 5]))
def test_the_limit_obeys_the_price_rules_and_stays_within_the_bound(
    reference: float, bps: float, is_buy: bool, sz: int
) -> None:
    inst = BTC.model_copy(update={"hl_sz_decimals": sz})
    px = limit_price(inst, is_buy, reference, bps)
    order = Order(0, is_buy, format(px, "f"), "1000000")
    check_order(order, inst, reference, bps)  # never rejected for its price, within the bound
    assert px > 0 and (px >= Decimal(repr(reference)) * Decimal("0.9")) if is_buy else px > 0
