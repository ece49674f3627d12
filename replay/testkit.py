"""Test kit for the replay: Hypothesis strategies for events and a helper that writes small tapes.

Imported by tests only (it needs the ``dev`` extra for Hypothesis).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

from core.events import EventKind
from core.tape import Manifest, TapeWriter, tape_schema

T0 = 1_723_161_600_000_000  # 2024-08-09 00:00:00 UTC in µs
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


def write_tape(
    path: Path,
    trade_rows: list[dict[str, Any]],
    quote_rows: list[dict[str, Any]],
    *,
    source: str = "synthetic",
    **manifest: Any,
) -> Manifest:
    """Write a tape: rows are sorted by ``ts_event`` (stable) and numbered with one ``seq`` per tape.

    ``seq`` is given in the rows' combined order (trades first, then quotes, each by time), so ties in
    ``ts_event`` across kinds are ordered the way a recorder would have seen them.
    """
    tagged: list[tuple[EventKind, dict[str, Any]]] = [("trade", r) for r in trade_rows]
    tagged += [("quote", r) for r in quote_rows]
    tagged.sort(key=lambda kr: kr[1]["ts_event"])
    per_kind: dict[EventKind, list[dict[str, Any]]] = {"trade": [], "quote": []}
    for seq, (kind, row) in enumerate(tagged):
        per_kind[kind].append({**row, "seq": seq})
    with TapeWriter(path, overwrite=True) as writer:
        for kind, rows in per_kind.items():
            if rows:
                writer.write(kind, pa.Table.from_pylist(rows, schema=tape_schema(kind)))
        return writer.close(source=source, **manifest)
