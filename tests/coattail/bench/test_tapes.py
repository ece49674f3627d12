"""The tapes ``coattail bench`` cuts: the first N events (``--events``), an exchange-time window
(``--from/--to``) and the busiest window of a length (``--busiest``), with the labels within them."""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coattail.bench.tapes import busiest, head, window
from core.errors import CoattailError
from core.labels import Label
from core.tape import Tape
from pipeline.testkit import quote, trade
from replay.testkit import T0, write_tape
from tests.replay.conftest import _tardis_tape


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


def test_a_window_keeps_the_events_and_labels_inside_it(tmp_path: Path) -> None:
    trades = [trade(i, 100.0, 1.0, T0 + 2 * i)[1] for i in range(10)]
    quotes = [quote(i, 99.0, 101.0, T0 + 2 * i + 1)[1] for i in range(10)]
    inside = Label(
        kind="whale", detector="MOD-001", exchange="binance", symbol="BTCUSDT", start_us=T0 + 4, end_us=T0 + 6
    )
    straddles = inside.model_copy(update={"start_us": T0 + 2})
    write_tape(tmp_path / "t", trades, quotes, labels=[inside, straddles])
    cut = Tape.open(window(tmp_path / "t", T0 + 4, T0 + 9, tmp_path / "w"))
    assert cut.manifest.rows == {"trade": 3, "quote": 2}
    assert (cut.manifest.start_us, cut.manifest.end_us) == (T0 + 4, T0 + 8)
    assert cut.manifest.labels == [inside]
    assert "events from" in cut.manifest.origin[-1]


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (T0 + 100, T0 + 200, "holds no events"),
        (T0 - 100, T0, "holds no events"),
        (T0 + 5, T0 + 5, "is not before"),
        (T0 + 9, T0 + 3, "is not before"),
    ],
)
def test_a_window_outside_the_tape_empty_or_reversed_is_refused(
    tmp_path: Path, start: int, end: int, message: str
) -> None:
    write_tape(tmp_path / "t", [trade(i, 100.0, 1.0, T0 + 2 * i)[1] for i in range(10)], [])
    with pytest.raises(CoattailError, match=message) as refused:
        window(tmp_path / "t", start, end, tmp_path / "w")
    assert "spans 2024-08-09T00:00:00" in str(refused.value)
    assert not (tmp_path / "w" / "manifest.json").exists()


@settings(max_examples=40)  # each example writes and cuts a tape
@given(
    times=st.lists(st.integers(0, 50), min_size=1, max_size=40),
    kinds=st.lists(st.booleans(), min_size=40, max_size=40),
    start=st.none() | st.integers(-5, 55),
    end=st.none() | st.integers(-5, 55),
)
def test_a_window_keeps_every_event_inside_none_outside_in_order(
    times: list[int], kinds: list[bool], start: int | None, end: int | None
) -> None:
    events = [(T0 + t, is_trade) for t, is_trade in zip(times, kinds, strict=False)]
    lo = None if start is None else T0 + start
    hi = None if end is None else T0 + end
    inside = [e for e in events if (lo is None or e[0] >= lo) and (hi is None or e[0] < hi)]
    with TemporaryDirectory() as scratch:
        root = Path(scratch)
        write_tape(
            root / "t",
            [trade(i, 100.0, 1.0, ts)[1] for i, (ts, is_trade) in enumerate(events) if is_trade],
            [quote(i, 99.0, 101.0, ts)[1] for i, (ts, is_trade) in enumerate(events) if not is_trade],
        )
        source = Tape.open(root / "t")
        if not inside or (lo is not None and hi is not None and lo >= hi):
            with pytest.raises(CoattailError):
                window(root / "t", lo, hi, root / "w")
            return
        cut = Tape.open(window(root / "t", lo, hi, root / "w"))
        for kind in source.manifest.kinds:
            whole = source.read(kind).to_pylist()
            expected = [
                r for r in whole if (lo is None or r["ts_event"] >= lo) and (hi is None or r["ts_event"] < hi)
            ]
            assert cut.read(kind).to_pylist() == expected  # same rows, same (tape) order


@settings(max_examples=40)
@given(times=st.lists(st.integers(0, 100), min_size=1, max_size=60), width=st.integers(1, 40))
def test_the_busiest_window_holds_the_most_events_of_any_window_of_its_length(
    times: list[int], width: int
) -> None:
    with TemporaryDirectory() as scratch:
        path = Path(scratch) / "t"
        write_tape(path, [trade(i, 100.0, 1.0, T0 + t)[1] for i, t in enumerate(times)], [])
        first, last, count = busiest(Tape.open(path), width)
    assert last - first == width
    assert count == sum(first <= T0 + t < last for t in times)
    # no window of that length holds more (the best one can always start at an event)
    assert count == max(sum(s <= t < s + width for t in times) for s in times)
    assert first == T0 + min(s for s in times if sum(s <= t < s + width for t in times) == count)


def test_the_busiest_hour_of_a_real_capture_is_a_window_of_it(tmp_path: Path) -> None:
    path = _tardis_tape(tmp_path / "real", 2_000)
    tape = Tape.open(path)
    first, last, count = busiest(tape, 60_000_000)  # the sample spans minutes: its busiest one
    cut = Tape.open(window(path, first, last, tmp_path / "w"))
    assert sum(cut.manifest.rows.values()) == count
    assert tape.manifest.start_us <= cut.manifest.start_us and cut.manifest.end_us <= tape.manifest.end_us
