"""``coattail bench --events N``: the tape's first N events, with the labels that end within them."""

from __future__ import annotations

from pathlib import Path

import pytest

from coattail.bench.tapes import head
from core.errors import CoattailError
from core.labels import Label
from core.tape import Tape
from replay.testkit import T0, write_tape


def test_head_keeps_the_first_events_of_both_kinds_and_the_labels_within(tmp_path: Path) -> None:
    trades = [
        {
            "exchange": "binance",
            "symbol": "BTCUSDT",
            "trade_id": i,
            "price": 100.0,
            "qty": 1.0,
            "side": "buy",
            "ts_event": T0 + 2 * i,
            "ts_recv": None,
        }
        for i in range(10)
    ]
    quotes = [
        {
            "exchange": "binance",
            "symbol": "BTCUSDT",
            "bid_px": 99.0,
            "bid_qty": 1.0,
            "ask_px": 101.0,
            "ask_qty": 1.0,
            "update_id": i,
            "ts_event": T0 + 2 * i + 1,
            "ts_recv": None,
        }
        for i in range(10)
    ]
    early = Label(
        kind="whale", detector="MOD-001", exchange="binance", symbol="BTCUSDT", start_us=T0, end_us=T0 + 3
    )
    late = early.model_copy(update={"start_us": T0 + 10, "end_us": T0 + 15})
    write_tape(tmp_path / "t", trades, quotes, labels=[early, late])
    cut = Tape.open(head(tmp_path / "t", 7, tmp_path / "h"))
    assert cut.manifest.rows == {"trade": 4, "quote": 3}
    assert cut.manifest.end_us == T0 + 6
    assert cut.manifest.labels == [early]
    assert head(tmp_path / "t", 7, tmp_path / "h").name == "h"  # made once, then reused
    with pytest.raises(CoattailError, match="holds 20 events"):
        head(tmp_path / "t", 21, tmp_path / "h2")
