"""``coattail bench --events N``: the tape's first N events, with the labels that end within them."""

from __future__ import annotations

from pathlib import Path

import pytest

from coattail.bench.tapes import head
from core.errors import CoattailError
from core.labels import Label
from core.tape import Tape
from pipeline.testkit import quote, trade
from replay.testkit import T0, write_tape


def test_head_keeps_the_first_events_of_both_kinds_and_the_labels_within(tmp_path: Path) -> None:
    trades = [trade(i, 100.0, 1.0, T0 + 2 * i)[1] for i in range(10)]
    quotes = [quote(i, 99.0, 101.0, T0 + 2 * i + 1)[1] for i in range(10)]
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
