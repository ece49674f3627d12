"""Replay test fixtures: small tapes made from the real samples in ../shared/real-tapes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from replay.testkit import write_tape
from tests.conftest import REAL_TAPES


def _tardis_tape(path: Path, rows: int = 2_000) -> Path:
    """The first ``rows`` trades and quotes of the real sample as a tape at ``path``."""
    trades = pl.read_csv(REAL_TAPES / "tardis" / "tardis_trades.csv", n_rows=rows)
    quotes = pl.read_csv(REAL_TAPES / "tardis" / "tardis_quotes.csv", n_rows=rows)
    trade_rows = [
        {
            "exchange": r["exchange"],
            "symbol": r["symbol"],
            "trade_id": r["id"],
            "price": float(r["price"]),
            "qty": float(r["amount"]),
            "side": r["side"],
            "ts_event": r["timestamp"],
            "ts_recv": r["local_timestamp"],
        }
        for r in trades.iter_rows(named=True)
    ]
    quote_rows = [
        {
            "exchange": r["exchange"],
            "symbol": r["symbol"],
            "bid_px": float(r["bid_price"]),
            "bid_qty": float(r["bid_amount"]),
            "ask_px": float(r["ask_price"]),
            "ask_qty": float(r["ask_amount"]),
            "update_id": i,
            "ts_event": r["timestamp"],
            "ts_recv": r["local_timestamp"],
        }
        for i, r in enumerate(quotes.iter_rows(named=True))
    ]
    write_tape(path, trade_rows, quote_rows, source="tardis-csv", origin=["tardis_trades.csv"])
    return path


@pytest.fixture
def tardis_tape() -> Callable[[Path, int], Path]:
    """A factory: ``tardis_tape(path, rows)`` writes the first ``rows`` real trades and quotes as a tape."""
    return _tardis_tape


@pytest.fixture
def real_tapes() -> Path:
    """The directory of real exchange samples."""
    return REAL_TAPES
