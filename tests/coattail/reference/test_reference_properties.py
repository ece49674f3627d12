"""Properties of the reference: per-key independence, exact record accounting on arbitrary payloads."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coattail.reference import from_wire, run_reference
from coattail.run.outputs import RECORD_REASONS
from coattail.validate import compare_with_reference
from core.events import to_wire
from pipeline.config import Config
from tests.coattail.coattail_tapekit import at

KEYS = (("binance", "BTCUSDT"), ("coinbase", "ETH-USD"))


@st.composite
def key_streams(draw: st.DrawFn) -> list[list[bytes]]:
    """Per key, a stream of trades and quotes in arrival order, with whales, jumps, gaps and repeats."""
    streams = []
    for exchange, symbol in KEYS:
        n = draw(st.integers(5, 60))
        t, tid, uid, out = 0.0, 0, 0, []
        for _ in range(n):
            t += draw(st.sampled_from([0.5, 2.0, 20.0, 45.0]))
            if draw(st.booleans()):
                tid += draw(st.sampled_from([1, 1, 1, 3, 0]))  # 0: a duplicate id
                price = draw(st.sampled_from([100.0, 100.0, 150.0]))
                qty = draw(st.sampled_from([1.0, 20_000.0]))  # 20,000 x 100 = 2M: a whale
                row = {
                    "exchange": exchange,
                    "symbol": symbol,
                    "trade_id": tid,
                    "price": price,
                    "qty": qty,
                    "side": "buy",
                    "ts_event": at(t),
                    "ts_recv": None,
                }
                out.append(to_wire("trade", row))
            else:
                uid += 1
                bid = draw(st.sampled_from([99.9, 100.0, 100.2]))
                row = {
                    "exchange": exchange,
                    "symbol": symbol,
                    "bid_px": bid,
                    "bid_qty": 1.0,
                    "ask_px": 100.1,
                    "ask_qty": 1.0,
                    "update_id": uid,
                    "ts_event": at(t),
                    "ts_recv": None,
                }
                out.append(to_wire("quote", row))
        streams.append(out)
    return streams


def interleave(streams: list[list[bytes]], seed: int) -> list[bytes]:
    """One arrival order of all keys that keeps each key's own order."""
    rng = random.Random(seed)
    cursors = [0] * len(streams)
    out = []
    while any(c < len(s) for c, s in zip(cursors, streams, strict=True)):
        i = rng.choice([k for k, s in enumerate(streams) if cursors[k] < len(s)])
        out.append(streams[i][cursors[i]])
        cursors[i] += 1
    return out


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(streams=key_streams(), a=st.integers(0, 1_000), b=st.integers(0, 1_000))
def test_interleaving_of_keys_does_not_matter(
    config: Config, streams: list[list[bytes]], a: int, b: int
) -> None:
    """Detectors work per key: how the keys' records interleave (shards, batches) changes nothing."""
    first = run_reference(from_wire(interleave(streams, a)), config)
    second = run_reference(from_wire(interleave(streams, b)), config)
    agreement = compare_with_reference(first, second)
    assert agreement.ok, agreement.to_dict()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    """Valid events with random fields replaced, removed or mistyped; or random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=40))
    row: dict[str, Any] = json.loads(
        to_wire(
            "trade",
            {
                "exchange": "binance",
                "symbol": "BTCUSDT",
                "trade_id": draw(st.integers(1, 5)),
                "price": 100.0,
                "qty": 1.0,
                "side": "buy",
                "ts_event": at(draw(st.integers(0, 100))),
                "ts_recv": None,
            },
        )
    )
    for name in draw(st.lists(st.sampled_from([*row, "extra"]), max_size=3)):
        if draw(st.booleans()):
            row.pop(name, None)
        else:
            row[name] = draw(json_values)
    return json.dumps(row).encode()


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(payloads(), max_size=30))
def test_every_record_is_valid_or_quarantined_once(config: Config, records: list[bytes]) -> None:
    out = run_reference(from_wire(records), config)
    quarantined = sum(r["count"] for r in out.dq.iter_rows(named=True) if r["reason"] in RECORD_REASONS)
    assert out.records_in == len(records)
    assert out.records_in == out.valid + quarantined
