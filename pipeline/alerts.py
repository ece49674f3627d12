"""The alert record: its schema, severities and the deterministic ``alert_id``.

Every detector emits rows of ``ALERT_SCHEMA``; the Iceberg alerts table and the DynamoDB items are
written from them. ``alert_id`` depends only on what fired (detector, instrument and the detector's key:
a trade id or a window start), never on when or how often it was computed, so a batch that is re-run
writes the same ids and the sinks can refuse a second copy.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

import pyarrow as pa

ALERT_SCHEMA: Final = pa.schema(
    [
        pa.field("alert_id", pa.string(), nullable=False),
        pa.field("detector", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("ts_event", pa.int64(), nullable=False),
        pa.field("window_start", pa.int64(), nullable=True),
        pa.field("window_end", pa.int64(), nullable=True),
        pa.field("severity", pa.string(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("threshold", pa.float64(), nullable=False),
        pa.field("evidence", pa.string(), nullable=False),
        pa.field("event_ids", pa.list_(pa.string()), nullable=False),
        pa.field("ts_sent", pa.int64(), nullable=True),
        pa.field("ts_ingest", pa.int64(), nullable=True),
        pa.field("ts_written", pa.int64(), nullable=True),
    ]
)


def alert_id(detector: str, exchange: str, symbol: str, key: str | int) -> str:
    """``sha256("{detector}|{exchange}|{symbol}|{key}")`` as 32 hex characters."""
    raw = f"{detector}|{exchange}|{symbol}|{key}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def evidence_json(evidence: Any) -> str:
    """An alert's ``evidence`` as the JSON text every writer uses: sorted keys, compact separators.

    One serialisation for the pipeline and the reference, so their alerts compare as text too.
    """
    return json.dumps(evidence, sort_keys=True, separators=(",", ":"))
