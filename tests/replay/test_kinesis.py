"""The Kinesis target against the embedded emulator: exact read-back, per-key order, retries."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from core.errors import TargetError
from core.tape import Tape
from pipeline.config import RuntimeSettings
from pipeline.kpl import deaggregate
from pipeline.testkit import trade
from replay.child_process import prepare_kinesis
from replay.engine import Replay
from replay.faults import FaultSpec, ThrottleFault
from replay.targets.kinesis import KinesisTarget
from replay.targets.memory import MemoryTarget
from replay.testkit import write_tape

pytestmark = pytest.mark.integration
TapeFactory = Callable[[Path, int], Path]


def _kinesis(endpoint: str) -> Any:
    return boto3.client(
        "kinesis",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _stream(endpoint: str, name: str, shards: int = 2) -> str:
    client = _kinesis(endpoint)
    client.create_stream(StreamName=name, ShardCount=shards)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1})
    return name


def _read_back(endpoint: str, stream: str) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Every user record per shard, in shard order, as (partition key, wire dict)."""
    client = _kinesis(endpoint)
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        it = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        rows: list[tuple[str, dict[str, Any]]] = []
        while it:
            resp = client.get_records(ShardIterator=it, Limit=10_000)
            for rec in resp["Records"]:
                rows += [(k, json.loads(d)) for k, d in deaggregate(rec["Data"], rec["PartitionKey"])]
            it = resp.get("NextShardIterator") if resp["Records"] else None
        out[shard["ShardId"]] = rows
    return out


def _tapes(tardis_tape: TapeFactory, root: Path, rows: int) -> list[Path]:
    """The real sample plus a synthetic tape of two more keys over the same span (three keys)."""
    real = tardis_tape(root / "real", rows)
    start = Tape.open(real).manifest.start_us
    synthetic = [
        trade(i, 100.0 + i, 1.0, start + i * 50_000, symbol=sym)[1]
        for i in range(rows // 2)
        for sym in ("ETHUSDT", "SOLUSDT")
    ]
    write_tape(root / "synthetic", synthetic, [])
    return [real, root / "synthetic"]


def _expected(tapes: list[Path]) -> list[dict[str, Any]]:
    target = MemoryTarget()
    Replay(tapes, target).run()
    return [json.loads(d) for _, d in target.records()]


def _strip(row: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in row.items() if k != "ts_sent"}, sort_keys=True)


def _assert_per_key_order(
    shards: dict[str, list[tuple[str, dict[str, Any]]]], expected: list[dict[str, Any]]
) -> None:
    """Each key's records come back, on one shard, exactly once and in tape order."""
    seen: set[str] = set()
    for rows in shards.values():
        for key in {k for k, _ in rows}:
            assert key not in seen, f"{key} on two shards"
            seen.add(key)
            assert [_strip(r) for k, r in rows if k == key] == [
                _strip(e) for e in expected if f"{e['exchange']}:{e['symbol']}" == key
            ]
    assert seen == {f"{e['exchange']}:{e['symbol']}" for e in expected}


@pytest.mark.parametrize("aggregate", [True, False])
def test_read_back_holds_exactly_the_sent_records_in_key_order(
    tardis_tape: TapeFactory, aws_endpoint: str, tmp_path: Path, aggregate: bool
) -> None:
    tapes = _tapes(tardis_tape, tmp_path, rows=600)
    stream = _stream(aws_endpoint, f"replay-readback-{aggregate}")
    runtime = RuntimeSettings(aws_endpoint=aws_endpoint)
    target = KinesisTarget(runtime, stream, aggregate=aggregate)
    summary = Replay(tapes, target, batch_rows=256).run()
    expected = _expected(tapes)
    shards = _read_back(aws_endpoint, stream)
    got = [row for rows in shards.values() for _, row in rows]
    assert summary.sent == len(expected) == 1_800
    assert sorted(map(_strip, got)) == sorted(map(_strip, expected))
    assert all(isinstance(r["ts_sent"], int) and r["ts_sent"] > 0 for r in got)
    _assert_per_key_order(shards, expected)
    if aggregate:
        assert target.kinesis_records < summary.sent / 10


def test_injected_throttling_bursts_are_retried_in_order(
    tardis_tape: TapeFactory, aws_endpoint: str, tmp_path: Path
) -> None:
    tapes = _tapes(tardis_tape, tmp_path, rows=400)
    stream = _stream(aws_endpoint, "replay-throttle", shards=1)
    target = KinesisTarget(
        RuntimeSettings(aws_endpoint=aws_endpoint),
        stream,
        aggregate=False,
        backoff_base_ms=1,
        backoff_max_ms=5,
    )
    summary = Replay(
        tapes, target, faults=FaultSpec(throttle=ThrottleFault(every=100, records=3)), batch_rows=64
    ).run()
    assert target.throttled_records > 0 and target.retried_records >= target.throttled_records
    _assert_per_key_order(_read_back(aws_endpoint, stream), _expected(tapes))
    assert any(label.kind == "throttle" for label in summary.labels)


class _ThrottlingProxy(BaseHTTPRequestHandler):
    """Forwards to the emulator, answering some PutRecords entries with ProvisionedThroughputExceeded."""

    upstream = ""
    calls = 0
    refuse_every = 3  # every 3rd record of every odd call fails
    always_fail = False

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        target = self.headers.get("X-Amz-Target", "")
        if not target.endswith("PutRecords"):
            self._forward(body)
            return
        cls = type(self)
        cls.calls += 1
        request = json.loads(body)
        records = request["Records"]
        refused = {
            i
            for i in range(len(records))
            if cls.always_fail or (cls.calls % 2 == 1 and i % cls.refuse_every == 0)
        }
        passed = [r for i, r in enumerate(records) if i not in refused]
        results: list[dict[str, Any]] = []
        answered: list[dict[str, Any]] = []
        if passed:
            payload = self._upstream({**request, "Records": passed})
            answered = json.loads(payload)["Records"]
        it = iter(answered)
        for i in range(len(records)):
            results.append(
                {
                    "ErrorCode": "ProvisionedThroughputExceededException",
                    "ErrorMessage": "Rate exceeded for shard",
                }
                if i in refused
                else next(it)
            )
        self._reply(200, json.dumps({"FailedRecordCount": len(refused), "Records": results}).encode())

    def _upstream(self, request: dict[str, Any]) -> bytes:
        data = json.dumps(request).encode()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("content-length", "host")}
        req = urllib.request.Request(self.upstream, data=data, headers=headers, method="POST")
        with urllib.request.urlopen(req) as resp:
            payload: bytes = resp.read()
            return payload

    def _forward(self, body: bytes) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("content-length", "host")}
        req = urllib.request.Request(self.upstream, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(req) as resp:
            self._reply(resp.status, resp.read())

    def _reply(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def throttling_proxy(aws_endpoint: str) -> Iterator[type[_ThrottlingProxy]]:
    handler = type("Proxy", (_ThrottlingProxy,), {"upstream": aws_endpoint, "calls": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.address = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("aggregate", [True, False])
def test_partial_throttling_through_a_proxy_loses_nothing_and_keeps_order(
    tardis_tape: TapeFactory,
    aws_endpoint: str,
    tmp_path: Path,
    throttling_proxy: type[_ThrottlingProxy],
    aggregate: bool,
) -> None:
    tapes = _tapes(tardis_tape, tmp_path, rows=300)
    stream = _stream(aws_endpoint, f"replay-proxy-{aggregate}", shards=2)
    runtime = RuntimeSettings(aws_endpoint=throttling_proxy.address)  # type: ignore[attr-defined]
    target = KinesisTarget(runtime, stream, aggregate=aggregate, backoff_base_ms=1, backoff_max_ms=5)
    Replay(tapes, target, batch_rows=50).run()
    assert target.retried_records > 0
    _assert_per_key_order(_read_back(aws_endpoint, stream), _expected(tapes))


def test_retry_budget_ends_in_a_clear_error(
    tardis_tape: TapeFactory, aws_endpoint: str, tmp_path: Path, throttling_proxy: type[_ThrottlingProxy]
) -> None:
    throttling_proxy.always_fail = True
    tape = tardis_tape(tmp_path / "tape", 20)
    stream = _stream(aws_endpoint, "replay-budget", shards=1)
    runtime = RuntimeSettings(aws_endpoint=throttling_proxy.address)  # type: ignore[attr-defined]
    target = KinesisTarget(runtime, stream, max_attempts=3, backoff_base_ms=1, backoff_max_ms=2)
    with pytest.raises(TargetError, match="after 3 attempts; add shards"):
        Replay([tape], target).run()


def test_missing_stream_is_a_clear_error(tardis_tape: TapeFactory, aws_endpoint: str, tmp_path: Path) -> None:
    tape = tardis_tape(tmp_path / "tape", 5)
    target = KinesisTarget(RuntimeSettings(aws_endpoint=aws_endpoint), "no-such-stream")
    with pytest.raises(TargetError, match="does not exist"):
        Replay([tape], target).run()


def test_a_target_connected_ahead_puts_with_that_client(
    tardis_tape: TapeFactory, aws_endpoint: str, tmp_path: Path
) -> None:
    tape = tardis_tape(tmp_path / "tape", 30)
    stream = _stream(aws_endpoint, "replay-connected", shards=1)
    target = KinesisTarget(RuntimeSettings(aws_endpoint=aws_endpoint), stream)
    target.connect()
    calls: list[str] = []
    target.writer._client.meta.events.register(
        "before-call.kinesis.PutRecords", lambda **_: calls.append("put")
    )
    summary = Replay([tape], target).run()
    assert calls and len(calls) == target.calls
    assert summary.sent == sum(len(rows) for rows in _read_back(aws_endpoint, stream).values()) > 0


def test_a_replay_in_a_child_process_sends_the_same_and_reports_progress(
    tardis_tape: TapeFactory, aws_endpoint: str, tmp_path: Path
) -> None:
    tapes = _tapes(tardis_tape, tmp_path, rows=300)
    stream = _stream(aws_endpoint, "replay-child")
    seen: list[int] = []
    summary = prepare_kinesis(
        tapes, RuntimeSettings(aws_endpoint=aws_endpoint), stream, speed=None, faults=None, seed=None,
        watermark_us=10_000_000,
    ).run(lambda p: seen.append(p.sent))
    expected = _expected(tapes)
    shards = _read_back(aws_endpoint, stream)
    assert summary.sent == len(expected) == sum(len(rows) for rows in shards.values())
    _assert_per_key_order(shards, expected)
    assert seen and seen[-1] == summary.sent


def test_a_prepared_child_sends_nothing_until_released_then_everything(
    tardis_tape: TapeFactory, aws_endpoint: str, tmp_path: Path
) -> None:
    tapes = _tapes(tardis_tape, tmp_path, rows=200)
    stream = _stream(aws_endpoint, "replay-prepared")
    child = prepare_kinesis(tapes, RuntimeSettings(aws_endpoint=aws_endpoint), stream, speed=None,
                            faults=None, seed=None, watermark_us=10_000_000)  # fmt: skip
    assert child.wait_ready(timeout=120)
    assert sum(len(rows) for rows in _read_back(aws_endpoint, stream).values()) == 0
    summary = child.run()
    expected = _expected(tapes)
    shards = _read_back(aws_endpoint, stream)
    assert summary.sent == len(expected) == sum(len(rows) for rows in shards.values())
    _assert_per_key_order(shards, expected)


def test_a_cancelled_child_sends_nothing(tardis_tape: TapeFactory, aws_endpoint: str, tmp_path: Path) -> None:
    tapes = _tapes(tardis_tape, tmp_path, rows=50)
    stream = _stream(aws_endpoint, "replay-cancelled")
    child = prepare_kinesis(tapes, RuntimeSettings(aws_endpoint=aws_endpoint), stream, speed=None,
                            faults=None, seed=None, watermark_us=10_000_000)  # fmt: skip
    assert child.wait_ready(timeout=120)
    child.cancel()
    assert sum(len(rows) for rows in _read_back(aws_endpoint, stream).values()) == 0


def test_a_failing_replay_in_a_child_process_raises_its_error_here(
    tardis_tape: TapeFactory, aws_endpoint: str, tmp_path: Path
) -> None:
    tape = tardis_tape(tmp_path / "tape", 5)
    with pytest.raises(TargetError, match="does not exist"):
        prepare_kinesis([tape], RuntimeSettings(aws_endpoint=aws_endpoint), "no-such-stream",
                        speed=None, faults=None, seed=None, watermark_us=10_000_000).run()


def test_a_dead_endpoint_ends_in_a_message_naming_it(tardis_tape: TapeFactory, tmp_path: Path) -> None:
    """The emulator died: the message names Kinesis, the endpoint and what to do, not shards or speed."""
    from infra import emulator

    tape = tardis_tape(tmp_path / "tape", 20)
    moto = emulator.start("moto", tmp_path / "moto")
    stream = _stream(moto.endpoint, "replay-dead", shards=1)
    emulator.server_process("moto", tmp_path / "moto").stop()
    runtime = RuntimeSettings(aws_endpoint=moto.endpoint)
    target = KinesisTarget(runtime, stream, max_attempts=2, backoff_base_ms=1, backoff_max_ms=2)
    with pytest.raises(TargetError, match=rf"Kinesis at {moto.endpoint} is unreachable .*`coattail status`"):
        Replay([tape], target).run()
