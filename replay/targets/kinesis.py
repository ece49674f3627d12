"""The Kinesis target: PutRecords within the API limits, optional KPL aggregation, ordered retries.

Order per partition key is kept across retries by construction: a PutRecords call carries at most one
record of each partition key, and the next record of a key is only sent once the previous one was
accepted. A record that failed (throttling, internal failure, a lost connection) is resent first, with
exponential backoff and full jitter, until its retry budget is spent; then a ``TargetError`` says what
to change. With aggregation (the default) a key's events since the last hand-over travel in one
Kinesis record, so the one-per-key rule costs nothing; without it, each call carries one event per key.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections import deque
from typing import Any, Final

import pyarrow as pa
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from core.errors import TargetError
from pipeline import aws, kpl
from pipeline.config import RuntimeSettings
from replay import wire
from replay.faults import Disturbance
from replay.targets.base import Target

MAX_RECORDS_PER_CALL: Final = 500
MAX_BYTES_PER_CALL: Final = 5 * 1024 * 1024
MAX_BYTES_PER_RECORD: Final = kpl.MAX_RECORD_BYTES
RETRYABLE: Final = frozenset({"ProvisionedThroughputExceededException", "InternalFailure"})
THROTTLED: Final = "ProvisionedThroughputExceededException"
UNREACHABLE: Final = "ConnectionError"
_CALL_RETRYABLE: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "ThrottlingException",
        "InternalFailure",
        "ServiceUnavailable",
    }
)


class _Record:
    __slots__ = ("attempts", "data", "events", "key")

    def __init__(self, key: str, data: bytes, events: int) -> None:
        self.key = key
        self.data = data
        self.events = events
        self.attempts = 0


_Job = tuple[pa.Table, int] | Disturbance


class KinesisTarget(Target):
    """Puts wire records (or KPL aggregates of them) on a Kinesis stream."""

    name = "kinesis"

    def __init__(
        self,
        runtime: RuntimeSettings,
        stream: str,
        *,
        aggregate: bool = True,
        max_attempts: int = 10,
        backoff_base_ms: float = 25.0,
        backoff_max_ms: float = 2_000.0,
        seed: int = 0,
        client: Any = None,
    ) -> None:
        super().__init__()
        self.runtime = runtime
        self.stream = stream
        self.aggregate = aggregate
        self.max_attempts = max_attempts
        self.backoff_base_ms = backoff_base_ms
        self.backoff_max_ms = backoff_max_ms
        self._rng = random.Random(seed)
        self._client = client
        self._throttle_left = 0
        self._disconnect_pause_ms: int | None = None
        self.calls = 0
        self.kinesis_records = 0
        self.retried_records = 0
        self.throttled_records = 0
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=4)
        self._worker: threading.Thread | None = None
        self._error: BaseException | None = None

    def open(self) -> None:
        if self._client is None:
            # Parameter validation walks every record of a 5 MiB call; the target checks the limits.
            config = BotoConfig(retries={"max_attempts": 3, "mode": "standard"}, parameter_validation=False)
            self._client = aws.client("kinesis", self.runtime, config=config)
        self._worker = threading.Thread(target=self._work, name="replay-kinesis", daemon=True)
        self._worker.start()

    def close(self) -> None:
        """Wait until every handed-over record is on the stream; raise the sender's error, if any."""
        if self._worker is not None:
            self._jobs.put(None)
            self._worker.join()
            self._worker = None
        self._raise_pending()

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _submit(self, job: _Job) -> None:
        # One sender thread encodes and puts; jobs run in hand-over order, so per-key order holds. A
        # sender error surfaces at the next hand-over or at close.
        self._raise_pending()
        if self._worker is None:
            self._run([job])
            return
        while True:
            try:
                self._jobs.put(job, timeout=0.1)
                return
            except queue.Full:
                self._raise_pending()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            # Everything handed over while the previous call was in flight goes out together: at a paced
            # speed that turns many small hand-overs into few calls (what the KPL's buffering does).
            jobs = [job]
            while isinstance(jobs[-1], tuple):
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._jobs.put(None)  # seen again by the outer loop once these jobs are done
                    break
                jobs.append(nxt)
            if self._error is not None:
                continue  # drain: nothing more is sent after a failure
            try:
                self._run(jobs)
            except BaseException as e:
                self._error = e

    def _run(self, jobs: list[_Job]) -> None:
        events = [job for job in jobs if isinstance(job, tuple)]
        if events:
            self._drain(self._records(events))
        for job in jobs:
            if isinstance(job, Disturbance):
                if job.kind == "throttle":
                    self._throttle_left += job.records
                else:
                    self._disconnect_pause_ms = job.pause_ms

    def _send(self, table: pa.Table, ts_sent: int) -> None:
        self._submit((table, ts_sent))

    def _records(self, handed: list[tuple[pa.Table, int]]) -> dict[str, deque[_Record]]:
        """Wire records (or KPL aggregates) per partition key, in hand-over order."""
        keys = pa.chunked_array([wire.partition_keys(t) for t, _ in handed], type=pa.string())
        data = pa.chunked_array([wire.encode_array(t, ts) for t, ts in handed], type=pa.large_binary())
        queues: dict[str, deque[_Record]] = {}
        if self.aggregate:
            for agg in kpl.aggregate_arrays(keys, data, max_bytes=MAX_BYTES_PER_RECORD):
                queues.setdefault(agg.partition_key, deque()).append(
                    _Record(agg.partition_key, agg.data, agg.user_records)
                )
            return queues
        for key, payload in zip(keys.to_pylist(), data.to_pylist(), strict=True):
            if len(payload) + len(key.encode()) > MAX_BYTES_PER_RECORD:
                raise TargetError(
                    f"an event of {len(payload)} bytes for key {key!r} exceeds Kinesis' 1 MiB record limit"
                )
            queues.setdefault(key, deque()).append(_Record(key, payload, 1))
        return queues

    def _drain(self, queues: dict[str, deque[_Record]]) -> None:
        round_ = 0
        while queues:
            batch: list[_Record] = []
            size = 0
            for pending in queues.values():
                head = pending[0]
                cost = len(head.data) + len(head.key.encode())
                if len(batch) == MAX_RECORDS_PER_CALL or size + cost > MAX_BYTES_PER_CALL:
                    break
                batch.append(head)
                size += cost
            failed = self._put(batch)
            for record in batch:
                if record not in failed:
                    pending = queues[record.key]
                    pending.popleft()
                    if not pending:
                        del queues[record.key]
            if failed:
                round_ += 1
                self.retried_records += len(failed)
                for record, (code, message) in failed.items():
                    record.attempts += 1
                    if record.attempts >= self.max_attempts and code == UNREACHABLE:
                        raise TargetError(message)  # the endpoint is gone: shards or speed do not help
                    if record.attempts >= self.max_attempts:
                        raise TargetError(
                            f"Kinesis stream {self.stream!r} kept refusing records of key {record.key!r} "
                            f"({code}: {message}) after {record.attempts} attempts; add shards "
                            "(kinesis.shards), lower --speed, or keep --aggregate on"
                        )
                self._backoff(round_)
            else:
                round_ = 0

    def _put(self, batch: list[_Record]) -> dict[_Record, tuple[str, str]]:
        """One PutRecords call; returns the records that failed with their error code and message."""
        failed: dict[_Record, tuple[str, str]] = {}
        to_send = batch
        if self._throttle_left:
            throttled = batch[: self._throttle_left]
            self._throttle_left -= len(throttled)
            self.throttled_records += len(throttled)
            failed.update({r: (THROTTLED, "injected throttling burst") for r in throttled})
            to_send = batch[len(throttled) :]
        if not to_send:
            return failed
        if self._disconnect_pause_ms is not None:
            pause, self._disconnect_pause_ms = self._disconnect_pause_ms, None
            time.sleep(pause / 1e3)
            failed.update({r: ("ConnectionLost", "injected disconnect") for r in to_send})
            return failed
        self.calls += 1
        try:
            response = self._client.put_records(
                StreamName=self.stream,
                Records=[{"Data": r.data, "PartitionKey": r.key} for r in to_send],
            )
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            message = e.response.get("Error", {}).get("Message", str(e))
            if code == "ResourceNotFoundException":
                raise TargetError(
                    f"Kinesis stream {self.stream!r} does not exist at {self.runtime.aws_endpoint}: "
                    "start and provision the stack (`coattail up`) or set kinesis.stream"
                ) from e
            if code not in _CALL_RETRYABLE:
                raise TargetError(f"Kinesis PutRecords on {self.stream!r} failed: {code}: {message}") from e
            failed.update({r: (code, message) for r in to_send})
            return failed
        except (BotoConnectionError, BotoCoreError) as e:
            doing = f"putting records on stream {self.stream!r}"
            failed.update({r: (UNREACHABLE, aws.failure("kinesis", self.runtime, doing, e)) for r in to_send})
            return failed
        for record, result in zip(to_send, response["Records"], strict=True):
            code = result.get("ErrorCode")
            if code is None:
                self.kinesis_records += 1
                continue
            if code not in RETRYABLE:
                raise TargetError(
                    f"Kinesis refused a record of key {record.key!r}: {code}: {result.get('ErrorMessage')}"
                )
            failed[record] = (code, result.get("ErrorMessage", ""))
        return failed

    def _backoff(self, round_: int) -> None:
        ceiling = min(self.backoff_max_ms, self.backoff_base_ms * (2 ** (round_ - 1)))
        time.sleep(self._rng.uniform(0, ceiling) / 1e3)

    def _disturb(self, disturbance: Disturbance) -> bool:
        self._submit(disturbance)
        return True
