"""Test kit for the windowed detectors, on top of ``pipeline.testkit``.

Event builders take the time first (window tests read best that way) and return ``pipeline.testkit``
items, so runs go through the real wire format, parser, sequencer and engine; ``run`` cuts the input
into micro-batches of a given size and returns every output table concatenated by name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

import pyarrow as pa

from pipeline import testkit
from pipeline.config import Config

SEC: Final = 1_000_000
MIN: Final = 60 * SEC


def trade(ts: int, trade_id: int, price: float, qty: float, *, symbol: str = "BTCUSDT",
          exchange: str = "binance") -> testkit.Item:  # fmt: skip
    """A trade at ``ts``."""
    return testkit.trade(trade_id, price, qty, ts, symbol=symbol, exchange=exchange)


def quote(ts: int, update_id: int, bid: float, ask: float, *, symbol: str = "BTCUSDT",
          exchange: str = "binance") -> testkit.Item:  # fmt: skip
    """A quote at ``ts``."""
    return testkit.quote(update_id, bid, ask, ts, symbol=symbol, exchange=exchange)


def run(
    config: Config, modules: Sequence[str], items: Sequence[testkit.Item], batch_rows: int | None = None
) -> dict[str, pa.Table]:
    """The engine over ``items`` in micro-batches of ``batch_rows`` (one batch when None), by table."""
    cfg = config.model_copy(update={"modules": tuple(modules)})
    step = batch_rows or max(len(items), 1)
    results = testkit.run_engine(cfg, items, cuts=range(step, len(items), step))
    names = {name for r in results for name in r.tables}
    return {n: pa.concat_tables([r.tables[n] for r in results if n in r.tables]) for n in sorted(names)}


def alerts_of(tables: dict[str, pa.Table], detector: str) -> list[dict[str, Any]]:
    """One detector's alerts, sorted by id, evidence decoded."""
    rows = [a for a in tables["alerts"].to_pylist() if a["detector"] == detector]
    for a in rows:
        a["evidence"] = json.loads(a["evidence"])
    return sorted(rows, key=lambda a: a["alert_id"])
