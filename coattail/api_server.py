"""``coattail api serve``: the alert API's Lambda handlers (``pipeline.api``) behind a small threaded HTTP
server on 127.0.0.1. Each request becomes the API Gateway HTTP API event (payload format 2.0) that AWS
would pass, and the handler's response is written back as it is, so the local API answers as the
deployed one does."""

from __future__ import annotations

import time
from collections.abc import Mapping
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


def send(handler: BaseHTTPRequestHandler, status: int, headers: Mapping[str, str], body: bytes) -> None:
    """Write one complete HTTP answer on ``handler``'s connection."""
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def answer(handler: BaseHTTPRequestHandler, api: AlertApi, target: str) -> None:
    """Answer ``handler``'s request with ``api`` as if it were for ``target`` (a path with its query)."""
    length = int(handler.headers.get("Content-Length") or 0)
    if length:  # no route takes a body; read it so the connection stays usable
        handler.rfile.read(length)
    event = api_gateway_event(handler.command, target, dict(handler.headers), handler.client_address[0])
    reply = api.handle(event)
    send(handler, reply["statusCode"], reply["headers"], reply["body"].encode())


def make_server(api: AlertApi, port: int = 0) -> ThreadingHTTPServer:
    """A server on 127.0.0.1:``port`` (0: a free one) answering every request with ``api``; call
    ``serve_forever`` on it (and ``shutdown`` to stop it)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            answer(self, api, self.path)

        # http.server dispatches on these names; every method goes to the handlers, which answer 405
        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: a request log line per call would bury the command's own output."""

    server = ThreadingHTTPServer((LOOPBACK, port), Handler)
    server.daemon_threads = True
    return server


def serve_until_interrupted(server: ThreadingHTTPServer) -> None:
    """Serve on this thread until Ctrl-C, then close the socket."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
