"""The alert API's handlers, called with API Gateway v2 events, against DynamoDB and Kinesis on the
session's emulator; alerts are written by the pipeline's DynamoDB sink."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.api.app import AlertApi
from pipeline.api.store import ApiSettings
from tests.pipeline.api.apikit import (
    DETECTORS,
    KINDS,
    MINUTE,
    SEVERITIES,
    SPECS,
    SYMBOLS,
    T0,
    api_for,
    body,
    gateway_event,
    throttled,
)

pytestmark = pytest.mark.integration


def _expected(**filters: Any) -> list[int]:
    """Event times of the alerts matching ``filters``, newest first."""
    names = ("symbol", "detector", "kind", "severity", "ts")
    start, end = filters.pop("start", None), filters.pop("end", None)
    rows: list[dict[str, Any]] = [dict(zip(names, spec, strict=True)) for spec in SPECS]
    rows = [r for r in rows if all(r[k] == v for k, v in filters.items())]
    rows = [r for r in rows if (start is None or r["ts"] >= start) and (end is None or r["ts"] <= end)]
    return sorted((r["ts"] for r in rows), reverse=True)


def _all_pages(api: AlertApi, query: dict[str, str]) -> tuple[list[int], int]:
    """Every alert the query returns, following the cursors, and how many pages that took."""
    got: list[int] = []
    pages = 0
    cursor = None
    while True:
        reply = api.handle(gateway_event("/alerts", {**query, **({"cursor": cursor} if cursor else {})}))
        assert reply["statusCode"] == 200, reply
        page = body(reply)
        assert page["count"] == len(page["alerts"]) <= int(query.get("limit", 100))
        got.extend(a["ts_event"] for a in page["alerts"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return got, pages
        assert pages < 100


def test_alerts_of_a_symbol_newest_first(api: AlertApi) -> None:
    reply = api.handle(gateway_event("/alerts", {"symbol": "ETHUSDT"}))
    assert reply["statusCode"] == 200
    assert reply["headers"]["content-type"] == "application/json"
    page = body(reply)
    assert [a["ts_event"] for a in page["alerts"]] == _expected(symbol="ETHUSDT")
    assert page["next_cursor"] is None
    first = page["alerts"][0]
    assert first["symbol"] == "ETHUSDT" and first["exchange"] == "binance"
    assert isinstance(first["evidence"], dict) and first["evidence"]["price"] == 100.5
    assert (
        first["ts_written"] is not None and first["expires_at"] == first["ts_written"] // 1_000_000 + 86_400
    )


@settings(max_examples=25)
@given(
    symbol=st.sampled_from((None, *SYMBOLS)),
    detector=st.sampled_from((None, *DETECTORS)),
    kind=st.sampled_from((None, *KINDS)),
    severity=st.sampled_from((None, *SEVERITIES)),
    span=st.none() | st.tuples(st.integers(-5, 65), st.integers(-5, 65)),
    limit=st.integers(1, 25),
)
def test_pages_return_every_matching_alert_once_newest_first(
    api: AlertApi,
    calls: list[str],
    symbol: str | None,
    detector: str | None,
    kind: str | None,
    severity: str | None,
    span: tuple[int, int] | None,
    limit: int,
) -> None:
    """Whatever the filters and page size, following the cursors yields exactly the matching alerts,
    newest first, each once, through index queries alone."""
    given = {"symbol": symbol, "detector": detector, "kind": kind, "severity": severity}
    filters = {k: v for k, v in given.items() if v is not None}
    query = {**filters, "limit": str(limit)}
    expected_filters: dict[str, Any] = dict(filters)
    if span is not None:
        lo, hi = sorted(span)
        query.update({"from": str(T0 + lo * MINUTE), "to": str(T0 + hi * MINUTE)})
        expected_filters.update(start=T0 + lo * MINUTE, end=T0 + hi * MINUTE)
    got, pages = _all_pages(api, query)
    expected = _expected(**expected_filters)
    assert got == expected
    assert pages <= len(expected) // limit + 2
    assert "Query" in calls and "Scan" not in calls


def test_time_range_takes_iso_times(api: AlertApi) -> None:
    query = {"from": "2026-01-01T00:10:00Z", "to": "2026-01-01T00:19:00Z", "limit": "1000"}
    got = [a["ts_event"] for a in body(api.handle(gateway_event("/alerts", query)))["alerts"]]
    assert got == _expected(start=T0 + 10 * MINUTE, end=T0 + 19 * MINUTE)


def test_one_alert_by_id_and_an_unknown_one(api: AlertApi) -> None:
    listed = body(api.handle(gateway_event("/alerts", {"limit": "1"})))["alerts"][0]
    reply = api.handle(gateway_event(f"/alerts/{listed['alert_id']}"))
    assert reply["statusCode"] == 200
    assert body(reply) == listed
    missing = api.handle(gateway_event("/alerts/" + "0" * 32))
    assert missing["statusCode"] == 404
    assert body(missing)["error"]["code"] == "not_found"


def test_summary_counts_by_detector_and_severity_over_24_hours(api: AlertApi) -> None:
    to = T0 + 30 * MINUTE
    reply = api.handle(gateway_event("/symbols/BTCUSDT/summary", {"to": str(to)}))
    assert reply["statusCode"] == 200
    summary = body(reply)
    window = [s for s in SPECS if s[0] == "BTCUSDT" and to - 86_400_000_000 <= s[4] <= to]
    assert summary["total"] == len(window) > 0
    assert summary["from"] == to - 86_400_000_000 and summary["to"] == to
    for detector in DETECTORS:
        assert summary["by_detector"].get(detector, 0) == sum(s[1] == detector for s in window)
        for severity in SEVERITIES:
            want = sum(s[1] == detector and s[3] == severity for s in window)
            assert summary["by_detector_severity"].get(detector, {}).get(severity, 0) == want
    assert sum(summary["by_severity"].values()) == len(window)


def test_health_names_the_stream_the_table_and_the_newest_alert(
    api: AlertApi, api_settings: ApiSettings
) -> None:
    reply = api.handle(gateway_event("/health"))
    assert reply["statusCode"] == 200
    health = body(reply)
    assert health["status"] == "ok"
    assert health["stream"] == {"name": api_settings.stream, "status": "ACTIVE", "open_shards": 1}
    assert health["table"]["name"] == api_settings.alerts_table and health["table"]["status"] == "ACTIVE"
    assert health["last_alert"]["ts_event"] == max(s[4] for s in SPECS)
    assert 0 <= health["last_alert"]["age_s"] < 600


def test_health_is_503_when_the_stream_is_missing(api_settings: ApiSettings) -> None:
    broken = api_for(api_settings.model_copy(update={"stream": "ct-api-no-such-stream"}))
    reply = broken.handle(gateway_event("/health"))
    assert reply["statusCode"] == 503
    assert body(reply)["stream"]["status"] == "UNREACHABLE"


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-01-02T00:00Z", "to": "2026-01-01T00:00Z"}, "from"),
        ({"sort": "asc"}, "sort"),
        ({"cursor": "not-a-cursor!"}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b'{"q":"x","k":{"a":1}}').decode()}, "cursor"),
        ({"symbol": "x" * 200}, "symbol"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(
    api: AlertApi, query: dict[str, str], parameter: str
) -> None:
    reply = api.handle(gateway_event("/alerts", query))
    assert reply["statusCode"] == 400
    error = body(reply)["error"]
    assert error["code"] == "bad_parameter" and error["parameter"] == parameter
    assert parameter in error["message"]


def test_a_cursor_only_serves_its_own_query(api: AlertApi) -> None:
    cursor = body(api.handle(gateway_event("/alerts", {"symbol": "BTCUSDT", "limit": "2"})))["next_cursor"]
    assert cursor is not None
    reply = api.handle(gateway_event("/alerts", {"symbol": "ETHUSDT", "limit": "2", "cursor": cursor}))
    assert reply["statusCode"] == 400
    assert body(reply)["error"]["parameter"] == "cursor"


@pytest.mark.parametrize("path", ["/", "/alert", "/alerts/a/b", "/symbols/BTCUSDT", "/symbols/BTCUSDT/other"])
def test_unknown_routes_are_404(api: AlertApi, path: str) -> None:
    reply = api.handle(gateway_event(path))
    assert reply["statusCode"] == 404
    assert body(reply)["error"]["code"] == "not_found"


def test_other_methods_are_405(api: AlertApi) -> None:
    reply = api.handle(gateway_event("/alerts", method="POST"))
    assert reply["statusCode"] == 405
    assert reply["headers"]["Allow"] == "GET"


def test_a_throttle_is_503_with_retry_after(api_settings: ApiSettings) -> None:
    """DynamoDB's throttle, once the client's own retries are spent, reaches the caller as a 503."""
    with throttled(api_settings) as api:
        reply = api.handle(gateway_event("/alerts", {"symbol": "BTCUSDT"}))
    assert reply["statusCode"] == 503
    assert reply["headers"]["Retry-After"] == "1"
    assert body(reply)["error"]["code"] == "throttled"


def test_lambda_entry_point_reads_its_environment(
    api_settings: ApiSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.api import app

    monkeypatch.setattr(app, "_api", None)
    monkeypatch.setenv("COATTAIL_ALERTS_TABLE", api_settings.alerts_table)
    monkeypatch.setenv("COATTAIL_STREAM", api_settings.stream)
    monkeypatch.setenv("COATTAIL_AWS_ENDPOINT", str(api_settings.runtime.aws_endpoint))
    reply = app.handler(gateway_event("/alerts", {"symbol": "SOLUSDT", "limit": "3"}), None)
    assert [a["ts_event"] for a in body(reply)["alerts"]] == _expected(symbol="SOLUSDT")[:3]


def test_lambda_without_its_environment_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.api import app

    monkeypatch.setattr(app, "_api", None)
    monkeypatch.delenv("COATTAIL_ALERTS_TABLE", raising=False)
    reply = app.handler(gateway_event("/health"), None)
    assert reply["statusCode"] == 500
    assert "COATTAIL_ALERTS_TABLE" in json.loads(reply["body"])["error"]["message"]
