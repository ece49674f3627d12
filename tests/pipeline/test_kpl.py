"""KPL aggregation: round trips, size limits, per-key order, corrupt aggregates."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import SchemaError
from pipeline.kpl import (
    MAGIC,
    aggregate,
    count_user_records,
    deaggregate,
    encode_aggregate,
    is_aggregated,
    locate_user_records,
)

keys = st.sampled_from(["binance:BTCUSDT", "coinbase:BTC-USD", "k", "ünï:code"])
records = st.lists(st.tuples(keys, st.binary(max_size=300)), min_size=1, max_size=60)


@given(records)
def test_encode_then_deaggregate_round_trips(recs: list[tuple[str, bytes]]) -> None:
    blob = encode_aggregate(recs)
    assert is_aggregated(blob)
    assert deaggregate(blob) == recs


@given(records, st.integers(min_value=400, max_value=5_000))
def test_aggregate_keeps_every_record_once_in_per_key_order(
    recs: list[tuple[str, bytes]], max_bytes: int
) -> None:
    out = aggregate(recs, max_bytes=max_bytes)
    back: list[tuple[str, bytes]] = []
    for agg in out:
        assert len(agg.data) + len(agg.partition_key.encode()) <= max_bytes
        inner = deaggregate(agg.data, agg.partition_key)
        assert {k for k, _ in inner} == {agg.partition_key}
        assert len(inner) == agg.user_records
        back += inner
    for key in {k for k, _ in recs}:
        assert [d for k, d in back if k == key] == [d for k, d in recs if k == key]
    assert len(back) == len(recs)


@given(records, st.integers(min_value=400, max_value=5_000))
def test_counting_user_records_matches_deaggregation(recs: list[tuple[str, bytes]], max_bytes: int) -> None:
    for agg in aggregate(recs, max_bytes=max_bytes):
        assert count_user_records(agg.data) == len(deaggregate(agg.data)) == agg.user_records
    assert count_user_records(encode_aggregate(recs)) == len(recs)


@pytest.mark.parametrize("data", [b'{"v":1}', b"", MAGIC + b"\xff" * 30, MAGIC + b"\x1a\x7f" + b"\x00" * 16])
def test_anything_but_a_well_formed_aggregate_counts_as_one_record(data: bytes) -> None:
    assert count_user_records(data) == 1  # what a reader keeps of it: the record whole, to quarantine


def test_plain_record_passes_through_unchanged() -> None:
    raw = b'{"v":1,"type":"trade"}'
    assert deaggregate(raw, "binance:BTCUSDT") == [("binance:BTCUSDT", raw)]
    assert deaggregate(b"") == [("", b"")]


def test_known_bytes_of_a_one_record_aggregate() -> None:
    # Hand-assembled from the KPL .proto: key table "a", one record (index 0, data "xy").
    message = b"\x0a\x01a" + b"\x1a\x06" + b"\x08\x00" + b"\x1a\x02xy"
    assert encode_aggregate([("a", b"xy")]) == MAGIC + message + hashlib.md5(message).digest()


def test_corrupt_aggregate_is_a_schema_error() -> None:
    blob = bytearray(encode_aggregate([("k", b"payload")]))
    blob[8] ^= 0xFF
    with pytest.raises(SchemaError, match="MD5"):
        deaggregate(bytes(blob))
    with pytest.raises(SchemaError, match="too short"):
        deaggregate(MAGIC + b"\x00")


def test_malformed_protobuf_with_valid_md5_is_a_schema_error() -> None:
    message = b"\x1a\x05\x08\x07\x1a\x01x"  # index 7 but an empty key table
    with pytest.raises(SchemaError, match="key index"):
        deaggregate(MAGIC + message + hashlib.md5(message).digest())
    message = b"\x1a\x7f\x08"  # length runs past the end
    with pytest.raises(SchemaError, match="past the end"):
        deaggregate(MAGIC + message + hashlib.md5(message).digest())


def test_oversized_user_record_is_rejected() -> None:
    with pytest.raises(SchemaError, match="does not fit"):
        aggregate([("k", b"x" * 2_000)], max_bytes=1_000)


@given(records, st.integers(min_value=400, max_value=5_000))
def test_arrow_and_python_inputs_give_the_same_bytes(recs: list[tuple[str, bytes]], max_bytes: int) -> None:
    import pyarrow as pa

    from pipeline.kpl import aggregate_arrays

    keys = pa.array([k for k, _ in recs])
    data = pa.array([d.hex() for _, d in recs])  # a string column, as the replay's JSON is
    as_text = [(k, d.hex().encode()) for k, d in recs]
    assert aggregate_arrays(keys, data, max_bytes=max_bytes * 2) == aggregate(
        as_text, max_bytes=max_bytes * 2
    )


def test_large_records_use_multi_byte_varints() -> None:
    recs = [("k", b"x" * 200), ("k", b"y" * 20_000), ("j", b"z" * 3)]
    out = aggregate(recs, max_bytes=30_000)
    assert [deaggregate(a.data, a.partition_key) for a in out] == [recs[:2], recs[2:]]
    assert [a.partition_key for a in out] == ["k", "j"]


def _located(blob: bytes) -> list[tuple[str, bytes]] | None:
    spans = locate_user_records(blob)
    if spans is None:
        return None
    return [
        (spans.keys[int(i)], blob[int(a) : int(a) + int(n)])
        for i, a, n in zip(spans.key_index, spans.starts, spans.lengths, strict=True)
    ]


@given(records, st.integers(min_value=400, max_value=5_000))
def test_locating_user_records_finds_what_deaggregation_does(
    recs: list[tuple[str, bytes]], max_bytes: int
) -> None:
    assert _located(encode_aggregate(recs)) == recs
    for agg in aggregate(recs, max_bytes=max_bytes):
        assert _located(agg.data) == deaggregate(agg.data, agg.partition_key)


def _with_md5(body: bytes) -> bytes:
    return MAGIC + body + hashlib.md5(body).digest()


@given(records, st.data())
def test_located_records_never_differ_from_the_reference(
    recs: list[tuple[str, bytes]], data: st.DataObject
) -> None:
    """Damage inside a valid MD5 (any byte changed, cut or added): the locator declines or agrees."""
    body = bytearray(encode_aggregate(recs)[len(MAGIC) : -16])
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        at = data.draw(st.integers(min_value=0, max_value=len(body)))
        edit = data.draw(st.sampled_from(["set", "cut", "add"]))
        if edit == "set" and at < len(body):
            body[at] = data.draw(st.integers(min_value=0, max_value=255))
        elif edit == "cut":
            del body[at : at + data.draw(st.integers(min_value=1, max_value=4))]
        else:
            body[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    blob = _with_md5(bytes(body))
    located = _located(blob)
    if located is not None:
        assert located == deaggregate(blob)
        assert count_user_records(blob) == len(located)


def test_other_layouts_are_left_to_the_reference() -> None:
    # a user record with an explicit hash key index (field 2) and a tag (field 4): valid, not located
    inner = b"\x08\x00\x10\x00\x1a\x02hi\x22\x00"
    blob = _with_md5(b"\x0a\x01k" + b"\x1a" + bytes([len(inner)]) + inner)
    assert locate_user_records(blob) is None
    assert deaggregate(blob) == [("k", b"hi")]
    assert locate_user_records(b'{"v":1}') is None
    assert locate_user_records(encode_aggregate([("k", b"x")])[:-1] + b"\x00") is None  # wrong MD5
