"""The Hypothesis settings every property runs with (tests/conftest.py)."""

from __future__ import annotations

from hypothesis import settings


def test_no_property_fails_for_a_slow_example() -> None:
    """Examples run as long as the shared machine's load makes them: no deadline, also for a property
    with settings of its own (they inherit the profile)."""
    assert settings().deadline is None
    assert settings(max_examples=5).deadline is None
