"""Inputs of the micro benchmarks: one synthetic batch (trades and quotes of 3 symbols on 2 exchanges).

``--micro-events N`` sets its size (default 100,000, the issue's batch); the test run's smoke uses a few
thousand with ``--benchmark-disable`` so the benchmarks are run, not timed, and cannot rot.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from core.events import EventKind, partition_key, to_wire
from pipeline.parse import parse_batch
from pipeline.testkit import T0, raw_table

INSTRUMENTS = [(e, s) for e in ("binance", "coinbase") for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")]
PRICES = {"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0, "SOLUSDT": 150.0}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--micro-events", type=int, default=100_000, help="events in the benchmarks' batch")


@pytest.fixture(scope="session")
def events(pytestconfig: pytest.Config) -> list[tuple[EventKind, dict[str, Any]]]:
    """Trades (2 in 3) and quotes, 10 ms apart per instrument, random-walk prices, a few whales."""
    n = int(pytestconfig.getoption("--micro-events"))
    rng = np.random.default_rng(7)
    steps = np.cumsum(rng.normal(0, 2e-4, n))
    qty = rng.lognormal(-1.0, 1.5, n)
    out: list[tuple[EventKind, dict[str, Any]]] = []
    for i in range(n):
        exchange, symbol = INSTRUMENTS[i % len(INSTRUMENTS)]
        price = PRICES[symbol] * float(np.exp(steps[i]))
        ts = T0 + i * 10_000 // len(INSTRUMENTS)
        if i % 3:
            out.append(
                (
                    "trade",
                    {
                        "exchange": exchange,
                        "symbol": symbol,
                        "trade_id": i,
                        "price": price,
                        "qty": float(qty[i]),
                        "side": "buy" if i % 2 else "sell",
                        "ts_event": ts,
                        "ts_recv": None,
                    },
                )
            )
        else:
            out.append(
                (
                    "quote",
                    {
                        "exchange": exchange,
                        "symbol": symbol,
                        "bid_px": price * 0.9999,
                        "bid_qty": 1.0,
                        "ask_px": price * 1.0001,
                        "ask_qty": 2.0,
                        "update_id": i,
                        "ts_event": ts,
                        "ts_recv": None,
                    },
                )
            )
    return out


@pytest.fixture(scope="session")
def wire(events: list[tuple[EventKind, dict[str, Any]]]) -> tuple[pa.Array, pa.Array]:
    """Partition keys and wire payloads of the batch."""
    keys = [partition_key(e["exchange"], e["symbol"]) for _, e in events]
    datas = [to_wire(kind, e, ts_sent=T0) for kind, e in events]
    return pa.array(keys, pa.string()), pa.array(datas, pa.binary())


@pytest.fixture(scope="session")
def raw(wire: tuple[pa.Array, pa.Array]) -> pa.Table:
    """The batch as the Kinesis source hands it over (``RAW_SCHEMA``)."""
    return raw_table(wire[1].to_pylist())


@pytest.fixture(scope="session")
def parsed(raw: pa.Table) -> pa.RecordBatch:
    """The batch parsed (``PARSED_SCHEMA``), as the engine receives it."""
    return parse_batch(raw.combine_chunks().to_batches()[0])
