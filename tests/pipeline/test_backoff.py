"""Backoff with full jitter: delays stay under a doubling ceiling capped at the maximum."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.backoff import Backoff, full_jitter_s


class _Extremes(random.Random):
    """A random source that always answers the upper (or lower) bound, to pin the ceilings."""

    def __init__(self, upper: bool) -> None:
        super().__init__(0)
        self.upper = upper
        self.asked: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.asked.append((a, b))
        return b if self.upper else a


def test_the_ceiling_doubles_from_the_base_up_to_the_maximum() -> None:
    backoff = Backoff(0.1, 1.0, _Extremes(upper=True))
    assert [round(backoff.next_delay_s(), 6) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    backoff.reset()
    assert backoff.failures == 0 and backoff.next_delay_s() == pytest.approx(0.1)


def test_full_jitter_may_retry_at_once() -> None:
    low = _Extremes(upper=False)
    assert Backoff(0.1, 1.0, low).next_delay_s() == 0.0 and low.asked == [(0, 0.1)]


@given(
    attempt=st.integers(1, 80),
    base=st.floats(1e-4, 10.0),
    cap=st.floats(1e-4, 100.0),
    seed=st.integers(0, 2**32),
)
def test_every_delay_lies_within_zero_and_the_ceiling(
    attempt: int, base: float, cap: float, seed: int
) -> None:
    cap = max(cap, base)
    delay = full_jitter_s(attempt, base, cap, random.Random(seed))
    assert 0.0 <= delay <= min(cap, base * 2 ** (attempt - 1))


def test_same_seed_same_delays() -> None:
    a, b = Backoff(0.05, 5.0, random.Random(9)), Backoff(0.05, 5.0, random.Random(9))
    assert [a.next_delay_s() for _ in range(10)] == [b.next_delay_s() for _ in range(10)]


def test_a_base_above_the_maximum_is_refused() -> None:
    with pytest.raises(ValueError, match="base"):
        Backoff(2.0, 1.0)
