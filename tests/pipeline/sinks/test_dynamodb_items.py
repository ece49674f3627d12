"""``to_item`` and ``from_item`` are inverses: an alert read back from DynamoDB is the alert written."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pipeline.sinks.dynamodb import from_item, to_item
from pipeline.tables import FEED_ATTRIBUTE, FEED_VALUE, DynamoTableDef

LAYOUT = DynamoTableDef("alerts")
times = st.integers(1_500_000_000_000_000, 1_900_000_000_000_000)
floats = st.floats(allow_nan=False) | st.sampled_from([float("inf"), float("-inf")])
alerts = st.fixed_dictionaries(
    {
        "alert_id": st.text(min_size=1, max_size=32),
        "detector": st.sampled_from(["MOD-001", "MOD-002", "MOD-003"]),
        "kind": st.text(min_size=1, max_size=20),
        "exchange": st.sampled_from(["binance", "coinbase"]),
        "symbol": st.text(min_size=1, max_size=12),
        "ts_event": times,
        "window_start": st.none() | times,
        "window_end": st.none() | times,
        "severity": st.sampled_from(["low", "medium", "high", "critical"]),
        "value": floats,
        "threshold": floats,
        "evidence": st.just('{"a":1}'),
        "event_ids": st.lists(st.text(max_size=30), max_size=5),
        "ts_sent": st.none() | times,
        "ts_ingest": st.none() | times,
        "ts_written": st.none(),
    }
)


@given(row=alerts, written=times, ttl_hours=st.integers(1, 72))
def test_an_item_reads_back_as_its_alert(row: dict[str, Any], written: int, ttl_hours: int) -> None:
    item = to_item(row, written, ttl_hours, LAYOUT)
    assert item[FEED_ATTRIBUTE] == {"S": FEED_VALUE}
    back = from_item(item)
    expected = {k: v for k, v in row.items() if v is not None}
    expected.update(ts_written=written, expires_at=written // 1_000_000 + ttl_hours * 3600)
    assert back == expected
