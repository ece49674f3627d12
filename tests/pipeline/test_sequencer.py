"""The sequencer's trade-id facts stay exact for ids beyond 2**53 (float64 would lose units there)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.testkit import T0, Item, dq_sums, run_engine, small_config, trade
from tests.pipeline.strategies import event_streams

CFG = small_config()
BIG = 2**60
"""float64 spacing here is 256: BIG + 128 rounds down, BIG + 129 up, BIG + 129 and + 131 alike."""


@pytest.mark.parametrize("cuts", [[], [1], [2]])
def test_id_gaps_are_exact_above_2_pow_53(cuts: list[int]) -> None:
    items: list[Item] = [trade(BIG + 128, 1.0, 1.0, T0), trade(BIG + 129, 1.0, 1.0, T0 + 1),
                         trade(BIG + 131, 1.0, 1.0, T0 + 2)]
    gaps = {k: v for k, v in dq_sums(run_engine(CFG, items, cuts)).items() if k[3] == "TRADE_ID_GAP"}
    assert gaps == {("binance", "BTCUSDT", T0, "TRADE_ID_GAP"): 1}  # 129 -> 131 only


def _shifted(items: list[Item], offset: int) -> list[Item]:
    out: list[Item] = []
    for item in items:
        if isinstance(item, tuple) and item[0] == "trade":
            item = ("trade", {**item[1], "trade_id": item[1]["trade_id"] + offset})
        out.append(item)
    return out


@settings(max_examples=30)
@given(event_streams(max_size=40), st.lists(st.integers(min_value=1, max_value=39), max_size=3))
def test_data_quality_does_not_depend_on_the_id_range(items: list[Item], cuts: list[int]) -> None:
    assert dq_sums(run_engine(CFG, _shifted(items, BIG + 77), cuts)) == dq_sums(run_engine(CFG, items, cuts))
