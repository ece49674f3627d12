"""The fault suite's comparison of two runs' rows as multisets (no Spark, no emulator)."""

from __future__ import annotations

from collections import Counter

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from coattail.run.faultsuite import _tally

rows = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 5)), max_size=30)


def _frame(items: list[tuple[str, int]]) -> pl.DataFrame:
    return pl.DataFrame(items, schema={"key": pl.String, "n": pl.Int64}, orient="row")


@given(rows, rows)
def test_lost_and_duplicated_account_for_every_row(
    a: list[tuple[str, int]], b: list[tuple[str, int]]
) -> None:
    tally = _tally("t", _frame(a), _frame(b))
    assert (tally.baseline, tally.rows) == (len(a), len(b))
    assert tally.lost - tally.duplicated == len(a) - len(b)
    assert (tally.lost == tally.duplicated == 0) == (Counter(a) == Counter(b))


@given(rows, rows)
def test_extra_copies_are_duplicates_and_missing_rows_are_lost(
    a: list[tuple[str, int]], extra: list[tuple[str, int]]
) -> None:
    doubled = _tally("t", _frame(a), _frame(a + extra))
    assert (doubled.lost, doubled.duplicated) == (0, len(extra))
    missing = _tally("t", _frame(a + extra), _frame(a))
    assert (missing.lost, missing.duplicated) == (len(extra), 0)
