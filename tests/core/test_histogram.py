"""LogHistogram: every value counted, percentiles within the stated relative error, merge = add all."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from core.histogram import RELATIVE_ERROR, LogHistogram

durations = st.lists(st.integers(min_value=0, max_value=10**11), min_size=1, max_size=300)


def exact_rank_value(values: list[int], q: float) -> int:
    """The value at rank ceil(q/100 * n) of the sorted population (the histogram's definition)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


@given(durations, st.sampled_from([0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0]))
def test_percentiles_are_within_the_relative_error_of_the_value_at_their_rank(
    values: list[int], q: float
) -> None:
    histogram = LogHistogram.of(np.array(values))
    got = histogram.percentile_us(q)
    assert got is not None
    exact = exact_rank_value(values, q)
    # relative to value + 1 µs: the buckets are logarithmic in (v + 1)
    assert abs(got - exact) <= RELATIVE_ERROR * (exact + 1) + 1e-9
    assert histogram.count == len(values)
    assert histogram.max_us == max(values) and histogram.min_us == min(values)


@given(durations, durations, st.integers(min_value=1, max_value=5))
def test_merge_equals_adding_everything_and_weight_repeats(a: list[int], b: list[int], weight: int) -> None:
    left, right = LogHistogram.of(np.array(a)), LogHistogram()
    right.add(np.array(b), weight=weight)
    left.merge(right)
    together = LogHistogram.of(np.array(a + b * weight))
    assert np.array_equal(left.counts, together.counts)
    assert (left.count, left.min_us, left.max_us) == (together.count, together.min_us, together.max_us)


@given(st.lists(st.integers(min_value=-10**6, max_value=10**9), max_size=200))
def test_round_trip_and_negatives_count_as_zero(values: list[int]) -> None:
    histogram = LogHistogram.of(np.array(values, dtype=np.int64))
    again = LogHistogram.from_dict(histogram.to_dict())
    assert np.array_equal(again.counts, histogram.counts)
    assert again.summary_ms() == histogram.summary_ms()
    assert histogram.negatives == sum(v < 0 for v in values)
    if values:
        assert histogram.min_us == max(0, min(values))


def test_empty_histogram_reports_nothing_measured() -> None:
    summary = LogHistogram().summary_ms()
    assert summary["count"] == 0 and summary["p99"] is None and summary["max"] is None
    assert LogHistogram().cdf_ms() == ([], [])
