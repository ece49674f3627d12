"""API Gateway HTTP API (payload format 2.0): the request a handler reads and the response it returns."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from core.errors import CoattailError

JSON_TYPE = "application/json"


class ApiError(CoattailError):
    """A request answered with an error status and a JSON body that says what to change."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        parameter: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.parameter = parameter
        self.headers = dict(headers or {})

    def response(self) -> dict[str, Any]:
        """This error as an API Gateway response: ``{"error": {"code", "message", "parameter"?}}``."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.parameter is not None:
            error["parameter"] = self.parameter
        return response(self.status, {"error": error}, self.headers)


def bad_parameter(parameter: str, message: str) -> ApiError:
    """A 400 naming the query or path parameter to change."""
    return ApiError(400, "bad_parameter", f"{parameter}: {message}", parameter=parameter)


@dataclass(frozen=True)
class Request:
    """What the handlers need of an API Gateway v2 event: the method, the path split into its (decoded)
    segments, and the query parameters (API Gateway joins a repeated one with commas)."""

    method: str
    segments: tuple[str, ...]
    query: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Request:
        """The request of a payload format 2.0 event."""
        http = (event.get("requestContext") or {}).get("http") or {}
        path = event.get("rawPath") or http.get("path") or "/"
        segments = tuple(unquote(s) for s in str(path).strip("/").split("/") if s)
        query = dict(event.get("queryStringParameters") or {})
        return cls(str(http.get("method", "GET")).upper(), segments, query)

    def only(self, *allowed: str) -> None:
        """Refuse (400) a query parameter this route does not take."""
        for name in self.query:
            if name not in allowed:
                takes = ", ".join(allowed) if allowed else "no parameters"
                raise bad_parameter(name, f"unknown parameter; this route takes {takes}")


def response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A payload format 2.0 response with a JSON body (compact; non-finite numbers are not JSON)."""
    return {
        "statusCode": status,
        "headers": {"content-type": JSON_TYPE, **(headers or {})},
        "body": json.dumps(body, separators=(",", ":"), allow_nan=False),
        "isBase64Encoded": False,
    }
