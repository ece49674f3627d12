"""``PriceAsOf`` against a direct event-by-event reading of docs/DETECTORS.md "Price as of x"."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import PipelineError
from pipeline.detectors.asof import BEFORE, PENDING, PriceAsOf

Event = tuple[int, bool, float]  # ts_event, counted trade, price


def reference(events: list[Event], x: int) -> tuple[float, int | None]:
    """(price as of x, index of the event that took the clock past x); (nan, None) while pending."""
    clock = -(2**62)
    last = math.nan
    for i, (ts, counted, price) in enumerate(events):
        if max(clock, ts) > x:
            return last, i
        clock = max(clock, ts)
        if counted:
            last = price
    return math.nan, None


events_st = st.lists(
    st.tuples(st.integers(0, 40), st.booleans(), st.floats(1.0, 1e6, allow_nan=False)), max_size=40
)


@settings(max_examples=300)
@given(
    events=events_st,
    cuts=st.lists(st.integers(0, 40), max_size=4),
    xs=st.lists(st.integers(-5, 45), max_size=8),
    retention=st.sampled_from([3, 10, 10**9]),
)
def test_any_split_agrees_with_the_definition(
    events: list[Event], cuts: list[int], xs: list[int], retention: int
) -> None:
    bounds = sorted({0, len(events), *(c for c in cuts if c <= len(events))})
    facility = PriceAsOf(retention_us=retention)
    for lo, hi in itertools.pairwise(bounds):
        chunk = events[lo:hi]
        # the state goes through JSON between chunks, as it does through a checkpoint
        facility = PriceAsOf(retention, json.loads(json.dumps(facility.to_state())))
        facility.feed(
            np.array([e[0] for e in chunk], dtype=np.int64),
            np.array([e[1] for e in chunk], dtype=bool),
            np.array([e[2] for e in chunk], dtype=np.float64),
        )
        asked_at = facility.clock
        prices, rows = facility.resolve(np.array(xs, dtype=np.int64), asked_at)
        for x, price, row in zip(xs, prices, rows, strict=True):
            want, at = reference(events, x)
            if at is None or at >= hi:
                assert row == PENDING and math.isnan(price)
            elif x < asked_at - retention:  # out of the history kept: unknown, never a wrong price
                assert row == BEFORE and math.isnan(price)
            else:
                assert (math.isnan(price) and math.isnan(want)) or price == want
                assert row == (at - lo if at >= lo else BEFORE)  # the resolving event's row, if fed now


def test_a_query_asked_before_the_last_chunk_is_refused() -> None:
    facility = PriceAsOf(retention_us=100)
    facility.feed(np.array([10, 20], dtype=np.int64), np.array([True, True]), np.array([1.0, 2.0]))
    facility.feed(np.array([30], dtype=np.int64), np.array([True]), np.array([3.0]))
    with pytest.raises(PipelineError, match="asked at a clock before the last chunk"):
        facility.resolve(np.array([5], dtype=np.int64), 0)


def test_retention_bounds_the_state_and_old_queries_answer_nan() -> None:
    facility = PriceAsOf(retention_us=100)
    ts = np.arange(0, 10_000, 10, dtype=np.int64)
    facility.feed(ts, np.ones(len(ts), dtype=bool), ts.astype(np.float64))
    facility.feed(np.array([10_000], dtype=np.int64), np.array([True]), np.array([1.0]))
    assert len(facility.step_clock) <= 12
    prices, rows = facility.resolve(np.array([9_950, 5_000, 20_000], dtype=np.int64), 10_000)
    assert prices[0] == 9_950.0 and rows[0] == BEFORE
    assert math.isnan(prices[1]) and rows[1] == BEFORE  # trimmed away: unknown, never a wrong price
    assert math.isnan(prices[2]) and rows[2] == PENDING
