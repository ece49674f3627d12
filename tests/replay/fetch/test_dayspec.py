"""Day ranges and ``coattail run --day`` specs."""

from __future__ import annotations

import calendar
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ConfigError
from replay.fetch import parse_day_spec
from replay.fetch.days import day_range, whole_months

days_st = st.dates(min_value=date(2019, 1, 1), max_value=date(2026, 12, 31))


@given(first=days_st, span=st.integers(0, 120))
def test_whole_months_and_the_rest_cover_the_range_exactly(first: date, span: int) -> None:
    days = day_range(first, first + timedelta(days=span))
    months, rest = whole_months(days)
    covered = [
        m.replace(day=d) for m in months for d in range(1, calendar.monthrange(m.year, m.month)[1] + 1)
    ]
    assert sorted(covered + rest) == days
    for d in rest:  # a left-over day's month is not entirely in the range
        month = [d.replace(day=i) for i in range(1, calendar.monthrange(d.year, d.month)[1] + 1)]
        assert not set(month) <= set(days)


@given(
    source=st.sampled_from(["binance", "tardis"]),
    market=st.sampled_from(["", "usdm", "binance-futures"]),
    symbols=st.lists(st.from_regex(r"[A-Z0-9]{2,10}", fullmatch=True), min_size=1, max_size=3),
    first=days_st,
    span=st.integers(0, 40),
)
def test_a_spec_round_trips(source: str, market: str, symbols: list[str], first: date, span: int) -> None:
    last = first + timedelta(days=span)
    where = f"{source}/{market}" if market else source
    text = f"{where}:{','.join(symbols)}:{first}" + (f"..{last}" if span else "")
    spec = parse_day_spec(text)
    assert (spec.source, spec.market, spec.symbols) == (source, market or "spot", tuple(symbols))
    assert spec.days[0] == first and spec.days[-1] == last and len(spec.days) == span + 1
    assert "/" not in spec.slug and ":" not in spec.slug


def test_the_readme_example() -> None:
    spec = parse_day_spec("binance:btcusdt:2024-01-01")
    assert (spec.source, spec.market, spec.symbols, spec.days) == (
        "binance",
        "spot",
        ("BTCUSDT",),
        (date(2024, 1, 1),),
    )
    assert spec.slug == "binance-spot-BTCUSDT-2024-01-01"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("binance:BTCUSDT", "expected SOURCE"),
        ("binance::2024-01-01", "expected SOURCE"),
        ("binance:BTC USDT:2024-01-01", "'BTC USDT' is not a symbol"),
        ("binance:BTCUSDT:2024-13-01", "'2024-13-01' is not a date"),
        ("binance:BTCUSDT:2024-01-03..2024-01-01", "before --from"),
    ],
)
def test_a_bad_spec_says_what_is_expected(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_day_spec(text)
