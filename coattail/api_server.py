"""``coattail api serve``: the alert API's Lambda handlers (``pipeline.api``) behind a small threaded HTTP
server on 127.0.0.1. Each request becomes the API Gateway HTTP API event (payload format 2.0) that AWS
would pass, and the handler's response is written back as it is, so the local API answers as the
deployed one does."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pipeline.api.app import AlertApi

LOOPBACK = "127.0.0.1"


def api_gateway_event(method: str, target: str, headers: dict[str, str], source_ip: str) -> dict[str, Any]:
    """The payload format 2.0 event API Gateway builds for ``method target`` (a path with its query):
    repeated query parameters joined with commas, header names in lower case, as AWS does."""
    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path or "/",
        "rawQueryString": parts.query,
        "headers": {k.lower(): v for k, v in headers.items()},
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": headers.get("Host", LOOPBACK),
            "http": {
                "method": method,
                "path": parts.path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("User-Agent", ""),
            },
            "requestId": f"local-{time.monotonic_ns()}",
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": time.time_ns() // 1_000_000,
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = {k: ",".join(v) for k, v in query.items()}
    return event


def make_server(api: AlertApi, port: int = 0) -> ThreadingHTTPServer:
    """A server on 127.0.0.1:``port`` (0: a free one) answering every request with ``api``; call
    ``serve_forever`` on it (and ``shutdown`` to stop it)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:  # no route takes a body; read it so the connection stays usable
                self.rfile.read(length)
            event = api_gateway_event(self.command, self.path, dict(self.headers), self.client_address[0])
            reply = api.handle(event)
            body = reply["body"].encode()
            self.send_response(reply["statusCode"])
            for name, value in reply["headers"].items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        # http.server dispatches on these names; every method goes to the handlers, which answer 405
        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: a request log line per call would bury the command's own output."""

    server = ThreadingHTTPServer((LOOPBACK, port), Handler)
    server.daemon_threads = True
    return server
