"""The vectorised wire encoding agrees with core.events.to_wire, event by event."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings

from core.events import EVENT_KINDS, SCHEMAS, to_wire
from core.tape import Tape
from pipeline.config import ConfigLoader
from replay import wire
from replay.engine import _on_time
from replay.merge import KIND_CODE, merge_tapes
from replay.testkit import write_tape
from replay.wire import corrupt_payload, encode
from tests.replay.strategies import quotes, trades


@settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow])
@given(trades(), quotes())
def test_batch_encoding_equals_to_wire(t: list[dict[str, Any]], q: list[dict[str, Any]]) -> None:
    if not t and not q:
        return
    with tempfile.TemporaryDirectory() as tmp:
        write_tape(Path(tmp) / "t", t, q)
        table = next(_on_time(merge_tapes([Tape.open(Path(tmp) / "t")])))
    encoded = encode(table, 42)
    for row, data in zip(table.to_pylist(), encoded, strict=True):
        kind = EVENT_KINDS[row["kind"]]
        reference = to_wire(kind, {n: row[n] for n in SCHEMAS[kind].names}, ts_sent=42)
        assert json.loads(data) == json.loads(reference)
        assert list(json.loads(data)) == list(json.loads(reference))  # same keys, same order


def test_corrupt_payload_is_not_json() -> None:
    bad = corrupt_payload(b'{"v":1,"type":"trade","exchange":"binance"}')
    try:
        json.loads(bad)
    except ValueError:
        return
    raise AssertionError("corrupt payload parsed as JSON")


def test_a_transfer_travels_under_its_markets_partition_key() -> None:
    # the trade's key; BTC's and a stablecoin's transfers under BTCUSDT's (their reference market, per
    # config/instruments.yaml and tokens.yaml); an asset without a market keeps its own key
    trade, transfer = KIND_CODE["trade"], KIND_CODE["transfer"]
    table = pa.table({
        "kind": pa.array([trade, transfer, transfer, transfer], pa.int8()),
        "exchange": ["coinbase", None, None, None],
        "symbol": ["ETH-USD", None, None, None],
        "chain": [None, "ethereum", "ethereum", "solana"],
        "asset": [None, "BTC", "USDT", "NOPE"],
    })
    registry = ConfigLoader().load("small", env={}).instruments.reference
    btc = ":".join(registry["BTC"])
    assert wire.partition_keys(table).to_pylist() == ["coinbase:ETH-USD", btc, btc, "solana:NOPE"]
    assert wire.event_keys(table).to_pylist() == [
        "coinbase:ETH-USD", "ethereum:BTC", "ethereum:USDT", "solana:NOPE",
    ]
