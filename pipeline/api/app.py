"""The routes of the alert API and the Lambda entry point (``handler``).

Every response is JSON; errors are ``{"error": {"code", "message", "parameter"?}}`` with 400 for a bad
parameter (named), 404 for an unknown route or alert, 405 for a method other than GET, 503 with
``Retry-After`` when DynamoDB throttles. Fields: ``docs/API.md``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Final

from core.errors import CoattailError
from core.timefmt import US_PER
from pipeline.api.http import ApiError, Request, response
from pipeline.api.query import parse_alert_query, text_parameter, time_parameter
from pipeline.api.store import AlertStore, ApiSettings

ROUTES: Final = ("/alerts", "/alerts/{alert_id}", "/symbols/{symbol}/summary", "/health")
"""Every route (all GET), in API Gateway's notation; the Terraform routes are checked against these."""
SUMMARY_WINDOW_US: Final = US_PER["h"] * 24
ALERT_FIELDS: Final = (
    "alert_id", "detector", "kind", "exchange", "symbol", "ts_event", "window_start", "window_end",
    "severity", "value", "threshold", "evidence", "event_ids", "ts_sent", "ts_ingest", "ts_written",
    "expires_at",
)  # fmt: skip
"""The fields of an alert in every response, always present (null when the alert has none)."""

log = logging.getLogger(__name__)


def alert_json(row: Mapping[str, Any], ttl_attribute: str) -> dict[str, Any]:
    """An alert as the API returns it: ``ALERT_FIELDS``; ``evidence`` as the object it encodes;
    a non-finite ``value`` or ``threshold`` (not representable in JSON) as null."""
    out: dict[str, Any] = {}
    for name in ALERT_FIELDS:
        value = row.get(ttl_attribute if name == "expires_at" else name)
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        out[name] = value
    if isinstance(out["evidence"], str):
        out["evidence"] = json.loads(out["evidence"])
    return out


class AlertApi:
    """The handlers of every route over one ``AlertStore``."""

    def __init__(self, store: AlertStore) -> None:
        self.store = store
        self._routes: dict[tuple[str, int], Callable[[Request], dict[str, Any]]] = {
            ("alerts", 1): self._list,
            ("alerts", 2): self._get,
            ("symbols", 3): self._summary,
            ("health", 1): self._health,
        }

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Answer one API Gateway v2 event; never raises."""
        try:
            request = Request.from_event(event)
            route = self._route(request)
            if request.method != "GET":
                message = f"{request.method}: only GET is served"
                raise ApiError(405, "method_not_allowed", message, headers={"Allow": "GET"})
            return route(request)
        except ApiError as e:
            return e.response()
        except Exception:
            log.exception("alert API: unexpected error")
            return ApiError(500, "internal", "the alert API failed; see its log").response()

    def _route(self, request: Request) -> Callable[[Request], dict[str, Any]]:
        segments = request.segments
        route = self._routes.get((segments[0], len(segments))) if segments else None
        if route is None or (segments[0] == "symbols" and segments[2] != "summary"):
            path = "/" + "/".join(segments)
            raise ApiError(404, "not_found", f"no route {path}; routes: {', '.join(ROUTES)}")
        return route

    def _list(self, request: Request) -> dict[str, Any]:
        query = parse_alert_query(request.query)
        rows, last_key = self.store.page(query)
        alerts = [alert_json(r, self.store.layout.ttl_attribute) for r in rows]
        cursor = query.cursor(last_key) if last_key is not None else None
        return response(200, {"alerts": alerts, "count": len(alerts), "next_cursor": cursor})

    def _get(self, request: Request) -> dict[str, Any]:
        request.only()
        alert_id = request.segments[1]
        row = self.store.get(alert_id)
        if row is None:
            raise ApiError(404, "not_found", f"no alert {alert_id!r} (unknown, or expired after its TTL)")
        return response(200, alert_json(row, self.store.layout.ttl_attribute))

    def _summary(self, request: Request) -> dict[str, Any]:
        request.only("to")
        symbol = text_parameter({"symbol": request.segments[1]}, "symbol")
        assert symbol is not None  # a path segment is never empty
        end = time_parameter(request.query, "to")
        end = self.store.clock() if end is None else end
        start = end - SUMMARY_WINDOW_US
        pairs = self.store.counts(symbol, start, end)
        nested: dict[str, dict[str, int]] = {}
        for (detector, severity), n in sorted(Counter(pairs).items()):
            nested.setdefault(detector, {})[severity] = n
        body = {
            "symbol": symbol,
            "from": start,
            "to": end,
            "total": len(pairs),
            "by_detector": dict(sorted(Counter(d for d, _ in pairs).items())),
            "by_severity": dict(sorted(Counter(s for _, s in pairs).items())),
            "by_detector_severity": nested,
        }
        return response(200, body)

    def _health(self, request: Request) -> dict[str, Any]:
        request.only()
        now = self.store.clock()
        stream, table = self.store.stream_state(), self.store.table_state()
        latest = self.store.latest() if table["status"] == "ACTIVE" else None
        last_alert = None
        if latest is not None:
            written = latest.get("ts_written")
            last_alert = {
                "alert_id": latest["alert_id"],
                "ts_event": latest["ts_event"],
                "ts_written": written,
                "age_s": None if written is None else round((now - written) / US_PER["s"], 3),
            }
        ok = stream["status"] in ("ACTIVE", "UPDATING") and table["status"] == "ACTIVE"
        body = {"status": "ok" if ok else "degraded", "checked_at": now, "stream": stream, "table": table,
                "last_alert": last_alert}  # fmt: skip
        return response(200 if ok else 503, body)


_api: AlertApi | None = None


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point: settings come from the environment on the first call (never at import)."""
    global _api
    if _api is None:
        try:
            _api = AlertApi(AlertStore.from_settings(ApiSettings.from_env(os.environ)))
        except ApiError as e:
            return e.response()
        except CoattailError as e:  # e.g. the endpoint guard refusing the configured endpoint
            return ApiError(500, "misconfigured", str(e)).response()
    return _api.handle(event)
