"""Building reference alerts as rows of ``pipeline.alerts.ALERT_SCHEMA``."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from pipeline.alerts import ALERT_SCHEMA, alert_id

MAX_EVENT_IDS = 50


def alert_row(
    *,
    detector: str,
    kind: str,
    exchange: str,
    symbol: str,
    key: str | int,
    ts_event: int,
    severity: str,
    value: float,
    threshold: float,
    evidence: str,
    event_ids: list[str],
    window_start: int | None = None,
    window_end: int | None = None,
    ts_sent: int | None = None,
) -> dict[str, Any]:
    """One alert as a dict with every ``ALERT_SCHEMA`` field; the id comes from the shared contract."""
    return {
        "alert_id": alert_id(detector, exchange, symbol, key),
        "detector": detector,
        "kind": kind,
        "exchange": exchange,
        "symbol": symbol,
        "ts_event": ts_event,
        "window_start": window_start,
        "window_end": window_end,
        "severity": severity,
        "value": float(value),
        "threshold": float(threshold),
        "evidence": evidence,
        "event_ids": event_ids[:MAX_EVENT_IDS],
        "ts_sent": ts_sent,
        "ts_ingest": None,
        "ts_written": None,
    }


def alerts_table(rows: list[dict[str, Any]]) -> pa.Table:
    """The rows as an ``ALERT_SCHEMA`` table sorted by (detector, exchange, symbol, ts_event, alert_id)."""
    ordered = sorted(
        rows, key=lambda r: (r["detector"], r["exchange"], r["symbol"], r["ts_event"], r["alert_id"])
    )
    return pa.Table.from_pylist(ordered, schema=ALERT_SCHEMA)
