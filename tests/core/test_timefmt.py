"""The CLI's shared time helpers: exact µs round trips, UTC by default, clear errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ConfigError
from core.timefmt import format_us, parse_time

# 0001-01-01 .. 9999-12-31, the range datetime can print
MICROS = st.integers(min_value=-62_135_596_800_000_000, max_value=253_402_300_799_999_999)


@given(MICROS)
def test_format_and_parse_round_trip_exactly(us: int) -> None:
    assert parse_time(format_us(us), "--from") == us


def test_times_before_the_epoch_keep_their_fraction() -> None:
    # float timestamps truncated towards zero used to shift these by a second
    assert parse_time("1969-12-31T23:59:59.5Z", "--from") == -500_000
    assert format_us(-500_000) == "1969-12-31T23:59:59.500000Z"


def test_seconds_format_drops_the_fraction_and_none_is_empty() -> None:
    assert format_us(1_700_000_000_999_999, "seconds") == "2023-11-14T22:13:20Z"
    assert format_us(None) == ""


def test_integers_are_microseconds_and_words_are_refused() -> None:
    assert parse_time(" 1700000000000000 ", "--to") == 1_700_000_000_000_000
    with pytest.raises(ConfigError, match=r"--to 'soon': expected ISO-8601"):
        parse_time("soon", "--to")
    # Unicode digits that str.isdigit() accepts but int() refuses are refused the same way
    with pytest.raises(ConfigError, match=r"--to '²': expected ISO-8601"):
        parse_time("²", "--to")
