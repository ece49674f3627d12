"""The chunk-independent reductions of the windowed detectors: any split gives the same bits."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from pipeline.detectors.windows import (
    NO_TIME,
    closing_bound,
    fold_sum,
    running_max,
    top_k,
    top_k_by_group,
    window_starts,
)

values = st.lists(st.floats(0.0, 1e9, allow_nan=False), min_size=1, max_size=200)


@given(xs=values, cuts=st.lists(st.integers(0, 200), max_size=5))
def test_fold_sum_does_not_depend_on_the_split(xs: list[float], cuts: list[int]) -> None:
    arr = np.array(xs)
    acc = 0.0
    bounds = [0, *sorted(c for c in cuts if c < len(xs)), len(xs)]
    for lo, hi in itertools.pairwise(bounds):
        acc = fold_sum(acc, arr[lo:hi])
    whole = 0.0
    for x in xs:
        whole += x
    assert acc == whole == fold_sum(0.0, arr)


@given(xs=st.lists(st.sampled_from([1.0, 2.0, 3.0, 7.5]), min_size=1, max_size=300), cut=st.integers(0, 300))
def test_top_k_merges_across_chunks(xs: list[float], cut: int) -> None:
    entries = [(v, i, f"id{i}") for i, v in enumerate(xs)]
    merged = top_k(top_k(entries[:cut], 5) + top_k(entries[cut:], 5), 5)
    assert merged == top_k(entries, 5)
    assert [e[1] for e in merged] == sorted(e[1] for e in merged)  # arrival order
    ranked = sorted(entries, key=lambda e: (-e[0], e[1]))[:5]
    assert sorted(merged) == sorted(ranked)


@given(xs=st.lists(st.sampled_from([1.0, 2.0, 3.0]), min_size=1, max_size=100))
def test_top_k_by_group_matches_top_k(xs: list[float]) -> None:
    groups = np.array([i % 3 for i in range(len(xs))], dtype=np.int64)
    got = top_k_by_group(groups, np.array(xs), np.arange(len(xs), dtype=np.int64), k=4)
    for g, rows in got.items():
        expect = top_k([(xs[i], i, str(i)) for i in range(len(xs)) if i % 3 == g], 4)
        assert sorted((v, a) for v, a, _ in rows) == sorted((v, a) for v, a, _ in expect)


def test_clock_and_window_bounds() -> None:
    ts = np.array([5, 3, 70, 60, 125], dtype=np.int64)
    assert running_max(ts, NO_TIME).tolist() == [5, 5, 70, 70, 125]
    assert running_max(ts, 100).tolist() == [100, 100, 100, 100, 125]
    assert window_starts(np.array([-1, 0, 59, 60], dtype=np.int64), 60).tolist() == [-60, 0, 0, 60]
    # [0, 60) closes once max - delay >= 60
    assert closing_bound(69, 10, 60) == 0 and closing_bound(70, 10, 60) == 60
    assert closing_bound(NO_TIME, 10, 60) == NO_TIME
