"""Record rules (MOD-004 quarantine) on hand-made payloads, and the count invariant."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.events import to_wire
from pipeline.parse import PARSED_SCHEMA, REASONS, parse_batch
from pipeline.testkit import T0, quote, raw_table, trade, transfer


def _wire(kind: str, **changes: object) -> bytes:
    base = {
        "trade": trade(7, 100.0, 1.0, T0)[1], "quote": quote(9, 99.0, 100.0, T0)[1],
        "transfer": transfer(5, 0, "BTC", 2.0, T0)[1],
    }[kind]
    payload = {"v": 1, "type": kind, **base, **changes}
    return json.dumps({k: v for k, v in payload.items() if v != "<drop>"}).encode()


CASES = [
    (b"not json", "PARSE_ERROR"),
    (b"[1, 2]", "PARSE_ERROR"),
    (b"\xff\xfe", "PARSE_ERROR"),
    (b"", "PARSE_ERROR"),
    (_wire("trade", v="<drop>"), "SCHEMA_VERSION"),
    (_wire("trade", v=2), "SCHEMA_VERSION"),
    (_wire("trade", v=1.0), "SCHEMA_VERSION"),
    (_wire("trade", v=True), "SCHEMA_VERSION"),
    (_wire("trade", type="order"), "UNKNOWN_TYPE"),
    (_wire("trade", price="<drop>"), "MISSING_FIELD"),
    (_wire("quote", ask_px=None), "MISSING_FIELD"),
    (_wire("trade", price="100.0"), "BAD_TYPE"),
    (_wire("trade", trade_id=7.0), "BAD_TYPE"),
    (_wire("trade", trade_id=2**63), "BAD_TYPE"),
    (_wire("trade", qty=True), "BAD_TYPE"),
    (_wire("trade", symbol=5), "BAD_TYPE"),
    (_wire("trade", ts_recv="x"), "BAD_TYPE"),
    (_wire("trade", price=0), "NON_POSITIVE_PRICE"),
    (_wire("trade", price=-1.5), "NON_POSITIVE_PRICE"),
    (_wire("quote", bid_px=0.0), "NON_POSITIVE_PRICE"),
    (_wire("trade", price=float("nan")), "NON_POSITIVE_PRICE"),
    (_wire("trade", price=float("inf")), "NON_POSITIVE_PRICE"),
    (_wire("trade", qty=0.0), "NON_POSITIVE_SIZE"),
    (_wire("quote", bid_qty=-1.0), "NON_POSITIVE_SIZE"),
    (_wire("trade", side="long"), "BAD_SIDE"),
    (_wire("transfer", tx_hash="<drop>"), "MISSING_FIELD"),
    (_wire("transfer", log_index="3"), "BAD_TYPE"),
    (_wire("transfer", block=-1), "BAD_TYPE"),
    (_wire("transfer", amount=0.0), "NON_POSITIVE_SIZE"),
    (_wire("transfer", chain="bitcoin"), "BAD_CHAIN"),
    (_wire("transfer", to_addr="0x" + "AB" * 20), "BAD_ADDRESS"),
    (_wire("transfer", from_addr="0x1234"), "BAD_ADDRESS"),
    (_wire("transfer", tx_hash="0x" + "ab" * 31), "BAD_TX_HASH"),
]


@pytest.mark.parametrize(("payload", "reason"), CASES)
def test_each_record_rule_has_its_reason(payload: bytes, reason: str) -> None:
    out = parse_batch(raw_table([payload])).to_pylist()[0]
    assert out["reason"] == reason
    assert out["raw"] is not None


def test_every_reason_is_exercised() -> None:
    assert {r for _, r in CASES} == set(REASONS)


def test_valid_edges_are_accepted() -> None:
    edges = [
        _wire("quote", bid_qty=0.0),  # an empty side of the book is a valid quote
        _wire("trade", price=5),  # an integer price is a number
        _wire("trade", ts_recv=None),
        _wire("trade", extra="ignored"),
        _wire("quote", bid_px=101.0),  # crossed: valid, counted by the stream rules
    ]
    rows = parse_batch(raw_table(edges)).to_pylist()
    assert [r["reason"] for r in rows] == [None] * len(edges)
    assert rows[1]["price"] == 5.0


def test_valid_trade_keeps_fields_and_stamps() -> None:
    row = parse_batch(raw_table([to_wire(*trade(42, 123.5, 0.25, T0), ts_sent=99)])).to_pylist()[0]
    assert row["kind"] == "trade" and row["reason"] is None
    fields = (row["trade_id"], row["price"], row["qty"], row["side"], row["ts_event"])
    assert fields == (42, 123.5, 0.25, "buy", T0)
    assert row["ts_sent"] == 99 and row["shard_id"] == "shardId-0"


def test_valid_transfer_keeps_its_fields_and_no_key_yet() -> None:
    kind, event = transfer(5, 3, "BTC", 2.5, T0, ts_recv=T0 + 7)
    row = parse_batch(raw_table([to_wire(kind, event, ts_sent=99)])).to_pylist()[0]
    assert row["kind"] == "transfer" and row["reason"] is None
    assert {name: row[name] for name in event} == event
    assert row["exchange"] is None and row["symbol"] is None and row["trade_id"] is None
    assert row["ts_sent"] == 99


def test_quarantine_keeps_readable_identity() -> None:
    row = parse_batch(raw_table([_wire("trade", side="long")])).to_pylist()[0]
    identity = (row["exchange"], row["symbol"], row["ts_event"], row["kind"])
    assert identity == ("binance", "BTCUSDT", T0, "trade")


@given(st.lists(st.one_of(st.binary(max_size=40), st.sampled_from([c[0] for c in CASES])), max_size=40))
def test_records_in_equals_valid_plus_quarantined_in_order(datas: list[bytes]) -> None:
    out = parse_batch(raw_table(datas))
    assert out.schema == PARSED_SCHEMA
    assert out.num_rows == len(datas)
    assert out.column("sequence_number").to_pylist() == [f"{i:020d}" for i in range(len(datas))]


wire_values = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5), st.sampled_from(["buy", "sell"]),
)


@st.composite
def wire_records(draw: st.DrawFn) -> bytes:
    """Mostly valid records with random damage: wrong types, nulls, missing fields, odd versions."""
    kind = draw(st.sampled_from(["trade", "quote", "order", "transfer"]))
    base = dict(
        quote(9, 99.0, 100.0, T0)[1] if kind == "quote"
        else transfer(5, 0, "BTC", 2.0, T0)[1] if kind == "transfer" else trade(7, 100.0, 1.0, T0)[1]
    )
    payload: dict[str, object] = {"v": draw(st.sampled_from([1, 1, 1, 2, 1.0, True])), "type": kind, **base}
    for name in draw(st.lists(st.sampled_from(sorted(payload)), max_size=2)):
        if draw(st.booleans()):
            payload.pop(name, None)
        else:
            payload[name] = draw(wire_values)
    if draw(st.booleans()):
        payload["ts_sent"] = draw(wire_values)
    text = json.dumps(payload)
    return draw(st.sampled_from([text.encode(), text.encode(), b"{" + text.encode(), text.encode() + b"\n"]))


@settings(max_examples=200)
@given(st.lists(wire_records(), max_size=30))
def test_vectorised_path_equals_the_per_record_reference(datas: list[bytes]) -> None:
    from pipeline.parse import _decode_fast, _from_decoded, _parse_slow

    def binary(values: list[bytes]) -> pa.BinaryArray:
        return pa.array(values, type=pa.binary())

    fast_ok = [d for d in datas if _decode_fast(binary([d])) is not None]  # Arrow refuses the others
    decoded = _decode_fast(binary(fast_ok))
    assert (decoded is None) == (not fast_ok)
    if decoded is not None:
        assert _from_decoded(decoded, binary(fast_ok)).to_pylist() == _parse_slow(list(fast_ok)).to_pylist()
    whole = parse_batch(raw_table(datas)).select(_parse_slow([]).schema.names)
    assert whole.to_pylist() == _parse_slow(list(datas)).to_pylist()
