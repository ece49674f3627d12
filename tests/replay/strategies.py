"""Hypothesis strategies for the replay's tests: trades and quotes of a few keys around ``T0``."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from replay.testkit import T0

KEYS = (("binance", "BTCUSDT"), ("binance", "ETHUSDT"), ("coinbase", "BTC-USD"))

prices = st.floats(min_value=0.01, max_value=100_000, allow_nan=False, allow_infinity=False)
sizes = st.floats(min_value=1e-8, max_value=1_000, allow_nan=False, allow_infinity=False)


@st.composite
def trades(draw: st.DrawFn, *, span_us: int = 5_000_000, max_size: int = 40) -> list[dict[str, Any]]:
    """Trades of a few keys, ids increasing per key, times within ``span_us`` of ``T0`` (ties likely)."""
    n = draw(st.integers(min_value=0, max_value=max_size))
    rows = []
    next_id = {k: draw(st.integers(1, 10**9)) for k in KEYS}
    for _ in range(n):
        exchange, symbol = draw(st.sampled_from(KEYS))
        next_id[(exchange, symbol)] += 1
        rows.append(
            {
                "exchange": exchange,
                "symbol": symbol,
                "trade_id": next_id[(exchange, symbol)],
                "price": draw(prices),
                "qty": draw(sizes),
                "side": draw(st.sampled_from(("buy", "sell"))),
                "ts_event": T0 + draw(st.integers(0, span_us // 1000)) * 1000,
                "ts_recv": draw(st.none() | st.integers(T0, T0 + 2 * span_us)),
            }
        )
    return rows


@st.composite
def quotes(draw: st.DrawFn, *, span_us: int = 5_000_000, max_size: int = 40) -> list[dict[str, Any]]:
    """Top-of-book quotes of a few keys within ``span_us`` of ``T0``."""
    n = draw(st.integers(min_value=0, max_value=max_size))
    rows = []
    for i in range(n):
        exchange, symbol = draw(st.sampled_from(KEYS))
        bid = draw(prices)
        rows.append(
            {
                "exchange": exchange,
                "symbol": symbol,
                "bid_px": bid,
                "bid_qty": draw(sizes),
                "ask_px": bid + draw(st.floats(min_value=0.01, max_value=10)),
                "ask_qty": draw(sizes),
                "update_id": 1_000 + i,
                "ts_event": T0 + draw(st.integers(0, span_us // 1000)) * 1000,
                "ts_recv": None,
            }
        )
    return rows
