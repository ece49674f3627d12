"""The vectorised arrival order, key codes, id intervals and key groups agree with their earlier
definitions, and the event frame holds the values of a plain conversion.

Each earlier definition is kept here, and only here, as the reference: ``arrival_order`` once parsed
sequence numbers into four 18-digit integers, ``key_codes`` once factorized a Python tuple per row, and
``merge_intervals`` (which once took ``np.unique`` of the ids) is checked against the ids it covers.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given
from hypothesis import strategies as st

from pipeline.detectors.base import ARROW_BACKED, DetectorInput, Key, _by_key, _key_groups
from pipeline.engine import _event_frame, arrival_order
from pipeline.parse import parse_batch
from pipeline.sequencer import key_codes, merge_intervals
from pipeline.testkit import T0, payloads, quote, raw_table, trade

_DIGITS = st.text(alphabet="0123456789", max_size=56)
"""Kinesis sequence numbers: decimal, up to 56 digits; leading zeros allowed (a tape's have one)."""


def _arrival_order_by_parsing(table: pa.Table) -> pa.Array:
    padded = pc.utf8_lpad(pc.fill_null(table.column("sequence_number"), ""), width=72, padding="0")
    parts = {
        f"_seq{i}": pc.cast(pc.utf8_slice_codeunits(padded, 18 * i, 18 * (i + 1)), pa.int64())
        for i in range(4)
    }
    keys = pa.table({"shard_id": table.column("shard_id"), **parts, "sub": table.column("sub_sequence")})
    return pc.sort_indices(keys, sort_keys=[(name, "ascending") for name in keys.column_names])


@given(st.lists(st.tuples(
    st.sampled_from(["shardId-000000000000", "shardId-000000000001", "tape", None]),
    st.one_of(st.none(), _DIGITS, st.sampled_from(["0", "00", "7", "007", "10", "010"])),
    st.one_of(st.none(), st.integers(min_value=0, max_value=3)),
), max_size=60))  # fmt: skip
def test_arrival_order_sorts_sequence_numbers_as_numbers(
    rows: list[tuple[str | None, str | None, int | None]],
) -> None:
    table = pa.table({
        "shard_id": pa.array([r[0] for r in rows], pa.string()),
        "sequence_number": pa.array([r[1] for r in rows], pa.string()),
        "sub_sequence": pa.array([r[2] for r in rows], pa.int32()),
    })  # fmt: skip
    assert arrival_order(table).equals(_arrival_order_by_parsing(table))


def _key_codes_by_tuples(exchange: pd.Series, symbol: pd.Series) -> tuple[np.ndarray, list[Key]]:
    keys = list(zip(exchange, symbol, strict=True))
    codes, uniques = pd.factorize(pd.Series(keys, dtype=object))
    return codes, [(str(k[0]), str(k[1])) for k in uniques]


_NAMES = st.sampled_from(["binance", "coinbase", "BTCUSDT", "BTC-USD", "a|b", "a", "b|", "", "ß"])


@given(st.lists(st.tuples(_NAMES, _NAMES), max_size=60))
def test_key_codes_number_keys_in_order_of_first_appearance(pairs: list[tuple[str, str]]) -> None:
    exchange = pd.Series([p[0] for p in pairs], dtype=object)
    symbol = pd.Series([p[1] for p in pairs], dtype=object)
    codes, keys = key_codes(exchange, symbol)
    want_codes, want_keys = _key_codes_by_tuples(exchange, symbol)
    assert keys == want_keys
    assert codes.tolist() == want_codes.tolist()


_IDS = st.integers(min_value=-(2**62), max_value=2**62)


@given(
    st.lists(st.tuples(_IDS, st.integers(min_value=0, max_value=5)).map(lambda p: (p[0], p[0] + p[1])),
             max_size=5),
    st.lists(st.one_of(_IDS, st.integers(min_value=-5, max_value=30)), max_size=60),
)
def test_merge_intervals_gives_the_maximal_runs_of_the_ids_seen(
    intervals: list[tuple[int, int]], ids: list[int]
) -> None:
    merged = merge_intervals(intervals, np.array(ids, dtype=np.int64))
    covered = {i for lo, hi in merged for i in range(lo, hi + 1)}
    assert covered == {i for lo, hi in intervals for i in range(lo, hi + 1)} | set(ids)
    # maximal runs, in order: a set of ids has exactly one such form, the one np.unique's gave
    assert all(lo <= hi for lo, hi in merged)
    assert all(hi + 1 < lo for (_, hi), (lo, _) in itertools.pairwise(merged))


def _key_groups_by_groupby(frame: pd.DataFrame) -> dict[Key, pd.DataFrame]:
    return {(str(k[0]), str(k[1])): g for k, g in frame.groupby(["exchange", "symbol"], sort=False)}


@given(st.lists(st.tuples(st.sampled_from(["binance", "coinbase"]), st.sampled_from(["BTCUSDT", "BTC-USD"]),
                          st.floats(allow_nan=False)), min_size=1, max_size=40))
def test_key_groups_hand_each_key_its_rows_as_a_groupby_does(rows: list[tuple[str, str, float]]) -> None:
    frame = pd.DataFrame(rows, columns=["exchange", "symbol", "price"])
    got, want = _key_groups(frame), _key_groups_by_groupby(frame)
    assert list(got) == list(want)
    for key, group in want.items():
        pd.testing.assert_frame_equal(got[key], group)
    only = next(iter(got.values()))
    only["added"] = 1.0  # a detector adding a column to its key's frame leaves the batch's frame alone
    assert "added" not in frame.columns


@given(st.lists(st.tuples(st.sampled_from(["binance", "coinbase"]), st.sampled_from(["BTCUSDT", "BTC-USD"]),
                          st.floats(allow_nan=False)), min_size=1, max_size=40), st.integers(0, 39))
def test_detectors_of_one_batch_share_its_key_split_and_each_gets_its_own_frames(
    rows: list[tuple[str, str, float]], cut: int
) -> None:
    trades = pd.DataFrame(rows, columns=["exchange", "symbol", "price"])
    frames = DetectorInput(trades=trades, quotes=trades.iloc[0:0])
    first = {key: group for key, group, _ in _by_key(replace(frames, upstream={}), ("trade",))}
    for group in first.values():
        group["added"] = 1.0  # the first detector adds a column to each of its key frames
    second = {key: group for key, group, _ in _by_key(replace(frames, upstream={}), ("trade",))}
    assert list(second) == list(first) and all("added" not in g.columns for g in second.values())
    # a view with other rows is split anew, never given the batch's split
    fewer = trades.iloc[: cut % len(trades) + 1]
    third = {key: group for key, group, _ in _by_key(replace(frames, trades=fewer), ("trade",))}
    want = _key_groups_by_groupby(fewer)
    assert list(third) == sorted(want)
    for key, group in want.items():
        pd.testing.assert_frame_equal(third[key], group)


def test_event_frame_holds_the_values_of_a_plain_conversion() -> None:
    items = [trade(i, 100.0 + i, 1.0, T0 + i) for i in range(6)]
    items += [quote(i, 99.0, 101.0, T0 + i) for i in range(6)]
    valid = parse_batch(raw_table(payloads(items)).to_batches()[0])
    frame = _event_frame(valid)
    plain = valid.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    assert list(frame.columns) == list(plain.columns)
    for name in ARROW_BACKED:
        assert frame[name].tolist() == plain[name].tolist()
    others = [c for c in plain.columns if c not in ARROW_BACKED]
    pd.testing.assert_frame_equal(frame[others], plain[others])
