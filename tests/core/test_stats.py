"""Student's t upper tail: published quantiles, symmetry and monotonicity."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.stats import t_sf


@pytest.mark.parametrize(("t", "df", "p"), [
    (6.313752, 1, 0.05), (12.706205, 1, 0.025), (4.302653, 2, 0.025), (2.015048, 5, 0.05),
    (1.833113, 9, 0.05), (2.457262, 30, 0.01), (1.675905, 50, 0.05), (0.0, 7, 0.5),
])
def test_published_quantiles(t: float, df: int, p: float) -> None:
    """Tables of Student's t (six significant figures) give the tail probability."""
    assert t_sf(t, df) == pytest.approx(p, rel=1e-5)
    assert t_sf(-t, df) == pytest.approx(1 - p, rel=1e-5)


@given(st.floats(-50, 50), st.floats(-50, 50), st.integers(1, 200))
def test_the_tail_is_a_decreasing_symmetric_probability(a: float, b: float, df: int) -> None:
    lo, hi = sorted((a, b))
    # absolute accuracy ~1e-15: far in the tail the series' rounding is all that is left
    assert 0.0 <= t_sf(hi, df) <= t_sf(lo, df) + 1e-12 and t_sf(lo, df) <= 1.0
    assert t_sf(a, df) + t_sf(-a, df) == pytest.approx(1.0, abs=1e-12)


def test_degrees_of_freedom_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        t_sf(1.0, 0)
