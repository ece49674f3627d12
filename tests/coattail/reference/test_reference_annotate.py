"""The reference's shared annotation (``late``, ``duplicate``, ``id_gap``, ``prev_price``) against a
record-by-record reading of docs/DETECTORS.md, Common ground, on arbitrary interleavings of keys."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coattail.reference import from_wire
from coattail.reference.stream import annotate
from core.events import to_wire
from pipeline.config import Config
from tests.coattail.coattail_tapekit import at

KEYS = (("binance", "BTCUSDT"), ("coinbase", "ETH-USD"), ("binance", "ETHUSDT"))
WATERMARK_S = 30


@st.composite
def arrivals(draw: st.DrawFn) -> list[bytes]:
    """Trades and quotes of a few keys in one arrival order; times jump back (late records), trade ids
    repeat (duplicates) and skip (gaps)."""
    out = []
    for _ in range(draw(st.integers(1, 80))):
        exchange, symbol = draw(st.sampled_from(KEYS))
        ts = at(draw(st.integers(0, 200)))
        if draw(st.booleans()):
            row: dict[str, Any] = {
                "exchange": exchange,
                "symbol": symbol,
                "trade_id": draw(st.integers(1, 12)),
                "price": draw(st.sampled_from([100.0, 101.0, 150.0])),
                "qty": 1.0,
                "side": "buy",
                "ts_event": ts,
                "ts_recv": None,
            }
            out.append(to_wire("trade", row))
        else:
            row = {
                "exchange": exchange,
                "symbol": symbol,
                "bid_px": 99.0,
                "bid_qty": 1.0,
                "ask_px": 100.0,
                "ask_qty": 1.0,
                "update_id": draw(st.integers(1, 12)),
                "ts_event": ts,
                "ts_recv": None,
            }
            out.append(to_wire("quote", row))
    return out


def naive(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """One record at a time, in arrival order, with per-key and per-key-and-kind memory."""
    max_ts: dict[tuple[str, str], int] = {}
    seen: set[tuple[str, str, int]] = set()
    max_id: dict[tuple[str, str], int] = {}
    last_price: dict[tuple[str, str], float] = {}
    out = []
    for r in rows:
        key = (r["exchange"], r["symbol"])
        late = key in max_ts and r["ts_event"] < max_ts[key] - WATERMARK_S * 1_000_000
        max_ts[key] = max(max_ts.get(key, r["ts_event"]), r["ts_event"])
        duplicate, gap, prev = False, None, None
        if r["kind"] == "trade":
            duplicate = (*key, r["trade_id"]) in seen
            seen.add((*key, r["trade_id"]))
            gap = r["trade_id"] - max_id[key] - 1 if key in max_id else None
            max_id[key] = max(max_id.get(key, r["trade_id"]), r["trade_id"])
            prev = last_price.get(key)
            last_price[key] = r["price"]
        out.append((r["arrival"], late, duplicate, gap, prev))
    return out


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=arrivals())
def test_annotation_matches_a_record_by_record_reading(config: Config, records: list[bytes]) -> None:
    frame = from_wire(records)
    annotated = annotate(frame, watermark_seconds=WATERMARK_S, instruments=config.instruments)
    got = annotated.select("arrival", "late", "duplicate", "id_gap", "prev_price").rows()
    assert got == naive(frame.sort("arrival").to_dicts())


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=arrivals())
def test_annotation_of_a_time_ordered_arrival(config: Config, records: list[bytes]) -> None:
    """Arrival in time order, as a tape replays without faults: the annotation takes its shortcut for
    input whose times never go back, and must still read the records as one at a time would."""
    ordered = sorted(records, key=lambda r: json.loads(r)["ts_event"])
    frame = from_wire(ordered)
    annotated = annotate(frame, watermark_seconds=WATERMARK_S, instruments=config.instruments)
    got = annotated.select("arrival", "late", "duplicate", "id_gap", "prev_price").rows()
    assert got == naive(frame.sort("arrival").to_dicts())
