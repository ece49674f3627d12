"""The fault proxy: an HTTP server on 127.0.0.1 that forwards AWS requests to the emulator, except when a
seeded draw (``spec.ProxySpec``) or a Kinesis quota (``limits``) says otherwise.

Which request gets which fault is drawn from ``(seed, service, operation, n)`` where ``n`` counts that
operation's requests: the same seed and the same calls give the same faults. Requests are told apart
by their ``X-Amz-Target`` header (Kinesis, DynamoDB, Glue: JSON protocols); anything else is S3.
When the emulator cannot be reached the proxy resets the client's connection, as a dead endpoint would.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlparse

from core.errors import StackError
from infra.faultproxy import shapes
from infra.faultproxy.limits import KinesisQuota, ShardRange, hash_key, shard_for
from infra.faultproxy.spec import FAULT_KINDS, FaultKind, ProxySpec
from infra.processes import LOOPBACK

_TARGETS: Final = {"Kinesis_20131202": "kinesis", "DynamoDB_20120810": "dynamodb", "AWSGlue": "glue"}
_SAFE_TO_REPEAT: Final = {
    "kinesis": {"GetRecords", "GetShardIterator", "ListShards", "DescribeStream", "DescribeStreamSummary"},
    "dynamodb": {"GetItem", "DescribeTable", "Query", "Scan"},
    "glue": {"GetTable", "GetTables", "GetDatabase", "GetDatabases"},
    "s3": {"GET", "HEAD", "PUT"},
}
_HOP_BY_HOP: Final = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}
_FAILURES: Final = {"throttle", "server_error", "reset", "lost_response"}


@dataclass(frozen=True)
class Request:
    """One client request as the proxy sees it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    service: str
    operation: str

    @property
    def safe_to_repeat(self) -> bool:
        """Whether a second execution of this request changes nothing (see ``ProxySpec.lost_response``)."""
        if self.service == "dynamodb" and self.operation == "PutItem":
            return b"ConditionExpression" in self.body
        return self.operation in _SAFE_TO_REPEAT.get(self.service, set())


class FaultProxy:
    """The proxy in front of ``upstream``; ``start()`` binds a free port on 127.0.0.1 (``endpoint``)."""

    def __init__(self, upstream: str, spec: ProxySpec | None = None) -> None:
        parsed = urlparse(upstream)
        if parsed.hostname is None or parsed.port is None:
            raise StackError(f"the fault proxy needs an upstream like http://127.0.0.1:PORT, not {upstream}")
        self.upstream = (parsed.hostname, parsed.port)
        self.spec = spec or ProxySpec()
        self.quota = KinesisQuota(self.spec.kinesis_limits) if self.spec.kinesis_limits else None
        self.injected: Counter[str] = Counter()
        """Faults injected, by kind; ``<service>:<kind>`` keys count them per service too."""
        self.requests = 0
        self._drawn: Counter[tuple[str, str]] = Counter()
        self._streak: Counter[tuple[str, str]] = Counter()
        self._ranges: dict[str, list[ShardRange]] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """The URL clients use instead of the emulator's."""
        if self._server is None:
            raise StackError("the fault proxy is not started")
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        """Serve in a background thread."""
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def summary(self) -> dict[str, Any]:
        """Requests seen, faults injected by kind and service, quota refusals and per-shard peaks."""
        out: dict[str, Any] = {"requests": self.requests, "injected": dict(sorted(self.injected.items()))}
        if self.quota is not None:
            out["kinesis_quota"] = {
                "refused_records": self.quota.refused_records,
                "refused_reads": self.quota.refused_reads,
                "peaks": {s: vars(p) for s, p in sorted(self.quota.peaks.items())},
            }
        return out

    # -- decisions

    def draw(self, request: Request) -> tuple[FaultKind | None, int]:
        """The fault for this request, if any (seeded; at most ``max_consecutive`` failures in a row),
        and which of the fault's error codes to answer."""
        key = (request.service, request.operation)
        with self._lock:
            self.requests += 1
            n = self._drawn[key]
            self._drawn[key] += 1
            rng = random.Random(f"{self.spec.seed}:{request.service}:{request.operation}:{n}")
            chosen: FaultKind | None = None
            for kind in FAULT_KINDS:
                hit = rng.random() < self.spec.rate(kind)  # one draw per kind, always: reproducible
                if hit and chosen is None and (kind != "lost_response" or request.safe_to_repeat):
                    chosen = kind
            if chosen in _FAILURES and self._streak[key] >= self.spec.max_consecutive:
                chosen = None
            self._streak[key] = self._streak[key] + 1 if chosen in _FAILURES else 0
            if chosen is not None:
                self.injected[chosen] += 1
                self.injected[f"{request.service}:{chosen}"] += 1
            return chosen, rng.randrange(1 << 16)

    # -- upstream

    def forward(self, request: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send ``request`` to the emulator on this thread's connection; (status, headers, body)."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
                headers["Content-Length"] = str(len(request.body))
                conn.request(request.method, request.path, body=request.body, headers=headers)
                response = conn.getresponse()
                body = response.read()
                return response.status, response.getheaders(), body
            except (http.client.HTTPException, OSError):
                # a kept-alive connection the emulator closed: one fresh try, then the emulator is gone
                self._local.conn = None
                conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(*self.upstream, timeout=120)
            self._local.conn = conn
        return conn

    def shard_ranges(self, stream: str, request: Request) -> list[ShardRange]:
        """The open shards of ``stream`` and their hash key ranges (asked of the emulator once)."""
        with self._lock:
            known = self._ranges.get(stream)
        if known is not None:
            return known
        headers = {**request.headers, "X-Amz-Target": "Kinesis_20131202.ListShards"}
        ranges: list[ShardRange] = []
        args: dict[str, Any] = {"StreamName": stream}
        while True:
            ask = Request("POST", "/", headers, json.dumps(args).encode(), "kinesis", "ListShards")
            status, _, body = self.forward(ask)
            if status != 200:
                return []
            page = json.loads(body)
            for shard in page.get("Shards", []):
                if "EndingSequenceNumber" in shard.get("SequenceNumberRange", {}):
                    continue
                r = shard["HashKeyRange"]
                ranges.append(
                    ShardRange(shard["ShardId"], int(r["StartingHashKey"]), int(r["EndingHashKey"]))
                )
            if not page.get("NextToken"):
                break
            args = {"NextToken": page["NextToken"]}
        with self._lock:
            self._ranges[stream] = ranges
        return ranges


def _stream_name(args: dict[str, Any]) -> str:
    if args.get("StreamName"):
        return str(args["StreamName"])
    return str(args.get("StreamARN", "")).rsplit("/", 1)[-1]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    owner: FaultProxy

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the proxy counts what it does instead of logging every request."""

    def do_GET(self) -> None:
        self._handle()

    do_PUT = do_POST = do_HEAD = do_DELETE = do_GET  # noqa: N815

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        body = self._read_body()
        target = self.headers.get("X-Amz-Target", "")
        prefix, _, operation = target.partition(".")
        service = _TARGETS.get(prefix, "s3")
        request = Request(
            self.command, self.path, dict(self.headers.items()), body, service,
            operation if service != "s3" else self.command,
        )
        proxy = self.owner
        fault, choice = proxy.draw(request)
        if fault == "reset":
            self._reset()
            return
        if fault in ("throttle", "server_error"):
            assert fault is not None
            self._answer(shapes.error(service, fault, choice, f"injected {fault}"))
            return
        if fault == "slow":
            time.sleep(proxy.spec.slow_ms / 1e3)
        try:
            result = self._limited(request) if proxy.quota is not None and service == "kinesis" else None
            if result is None:
                result = proxy.forward(request)
        except (http.client.HTTPException, OSError):
            self._reset()  # the emulator is gone: the client sees what a dead endpoint gives
            return
        if fault == "lost_response":
            self._reset()
            return
        self._send(*result)

    # -- Kinesis quotas

    def _limited(self, request: Request) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """Apply the Kinesis quotas; None when the request is simply forwarded."""
        proxy = self.owner
        quota = proxy.quota
        assert quota is not None
        args: dict[str, Any] = json.loads(request.body or b"{}")
        op = request.operation
        if op in ("PutRecords", "PutRecord"):
            stream = _stream_name(args)
            ranges = proxy.shard_ranges(stream, request)
            entries = args["Records"] if op == "PutRecords" else [args]
            admitted = []
            for entry in entries:
                key = str(entry.get("PartitionKey", ""))
                size = len(base64.b64decode(entry.get("Data", ""))) + len(key.encode())
                shard = shard_for(ranges, hash_key(key, entry.get("ExplicitHashKey")))
                admitted.append((shard, quota.admit_write(f"{stream}/{shard}", size)))
            if all(ok for _, ok in admitted):
                return None
            if op == "PutRecord":
                return _throttled(admitted[0][0], stream)
            return self._partial_put(request, args, stream, admitted)
        if op == "GetShardIterator":
            result = proxy.forward(request)
            if result[0] == 200:
                shard = f"{_stream_name(args)}/{args['ShardId']}"
                quota.remember_iterator(json.loads(result[2]).get("ShardIterator"), shard)
            return result
        if op == "GetRecords":
            shard_key = quota.shard_of(args.get("ShardIterator", ""))
            if shard_key is None:
                return None
            if not quota.admit_read(shard_key):
                stream, _, shard = shard_key.partition("/")
                return _throttled(shard, stream)
            result = proxy.forward(request)
            if result[0] == 200:
                quota.add_read_bytes(shard_key, len(result[2]))
                following = json.loads(result[2]).get("NextShardIterator")
                quota.advance(args["ShardIterator"], following, shard_key)
            return result
        return None

    def _partial_put(
        self, request: Request, args: dict[str, Any], stream: str, admitted: list[tuple[str, bool]]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Forward the admitted entries of a PutRecords; the refused ones fail in their result slots."""
        kept = [entry for entry, (_, ok) in zip(args["Records"], admitted, strict=True) if ok]
        forwarded: list[dict[str, Any]] = []
        failed_upstream = 0
        headers: list[tuple[str, str]] = [("Content-Type", shapes.JSON_TYPES["kinesis"])]
        if kept:
            sub = Request(request.method, request.path, request.headers,
                          json.dumps({**args, "Records": kept}).encode(), "kinesis", "PutRecords")
            status, headers, body = self.owner.forward(sub)
            if status != 200:
                return status, headers, body
            answer = json.loads(body)
            forwarded = answer["Records"]
            failed_upstream = int(answer.get("FailedRecordCount", 0))
        results: list[dict[str, Any]] = []
        upstream = iter(forwarded)
        for shard, ok in admitted:
            if ok:
                results.append(next(upstream))
            else:
                results.append({
                    "ErrorCode": "ProvisionedThroughputExceededException",
                    "ErrorMessage": f"Rate exceeded for shard {shard} in stream {stream}",
                })
        refused = sum(not ok for _, ok in admitted)
        out = {"FailedRecordCount": failed_upstream + refused, "Records": results}
        return 200, headers, json.dumps(out).encode()

    # -- answers

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP and name.lower() not in ("server", "date"):
                self.send_header(name, value)
        if self.command == "HEAD":
            # a HEAD answer has no body but the length of the one a GET would return (S3 object sizes)
            length = next((v for k, v in headers if k.lower() == "content-length"), "0")
            self.send_header("Content-Length", length)
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer(self, answer: shapes.Answer) -> None:
        self._send(*_as_result(answer))

    def _reset(self) -> None:
        """Close the client's connection with a TCP reset (SO_LINGER 0), no answer."""
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True


def _as_result(answer: shapes.Answer) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [("Content-Type", answer.content_type), ("x-amzn-ErrorType", answer.code)]
    return answer.status, headers, answer.body


def _throttled(shard: str, stream: str) -> tuple[int, list[tuple[str, str]], bytes]:
    message = f"Rate exceeded for shard {shard} in stream {stream}"
    return _as_result(shapes.shaped("kinesis", 400, "ProvisionedThroughputExceededException", message))
