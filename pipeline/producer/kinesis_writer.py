"""The Kinesis writer: PutRecords within the API limits, optional KPL aggregation, ordered retries.

Shared by the production producer (``pipeline.producer.manager``) and the replay's Kinesis target, so
that what the harness measures is what production sends.

Order per partition key is kept across retries by construction: a PutRecords call carries at most one
record of each partition key, and the next record of a key is only sent once the previous one was
accepted. A record that failed (throttling, internal failure, a lost connection) is resent first, with
exponential backoff and full jitter, until its retry budget is spent; then a ``ProducerError`` says what
to change. With aggregation (the default) a key's events since the last hand-over travel in one
Kinesis record, so the one-per-key rule costs nothing; without it, each call carries one event per key.

One sender thread encodes and puts; hand-overs (``submit``) and control steps (``control``) run on it
in hand-over order. A sender error surfaces at the next hand-over or at ``close``.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from core.errors import ProducerError
from pipeline import aws, kpl
from pipeline.backoff import full_jitter_s
from pipeline.config import RuntimeSettings

MAX_RECORDS_PER_CALL: Final = 500
MAX_BYTES_PER_CALL: Final = 5 * 1024 * 1024
MAX_BYTES_PER_RECORD: Final = kpl.MAX_RECORD_BYTES
RETRYABLE: Final = frozenset({"ProvisionedThroughputExceededException", "InternalFailure"})
UNREACHABLE: Final = "ConnectionError"
"""The error code of a record whose call never reached the endpoint."""
_CALL_RETRYABLE: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "ThrottlingException",
        "InternalFailure",
        "ServiceUnavailable",
    }
)

Failures = dict["PutRecord", tuple[str, str]]
"""Records a call did not place, with the error code and message of each."""


class PutRecord:
    """One Kinesis record waiting to be placed: a wire record or a KPL aggregate of several."""

    __slots__ = ("attempts", "data", "events", "key")

    def __init__(self, key: str, data: bytes, events: int) -> None:
        self.key = key
        self.data = data
        self.events = events
        self.attempts = 0


@dataclass(frozen=True)
class _Batch:
    keys: pa.Array
    data: pa.Array
    on_put: Callable[[int], None] | None
    """Called with the wall time (µs) at which every record of the batch was on the stream."""


_Job = _Batch | Callable[[], None]


class KinesisWriter:
    """Puts wire records (or KPL aggregates of them) on a Kinesis stream, from a sender thread."""

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
        queue_depth: int = 4,
    ) -> None:
        self.runtime = runtime
        self.stream = stream
        self.aggregate = aggregate
        self.max_attempts = max_attempts
        self.backoff_base_ms = backoff_base_ms
        self.backoff_max_ms = backoff_max_ms
        self._rng = random.Random(seed)
        self._client = client
        self.calls = 0
        self.kinesis_records = 0
        self.retried_records = 0
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_depth)
        self._worker: threading.Thread | None = None
        self._error: BaseException | None = None

    def connect(self) -> None:
        """Create the client unless there is one: ``open`` does it first; a caller with time to spare
        before its first record (the replay, before its release) does it ahead (0.1-0.2 s of CPU)."""
        if self._client is None:
            # Parameter validation walks every record of a 5 MiB call; the writer checks the limits.
            config = BotoConfig(retries={"max_attempts": 3, "mode": "standard"}, parameter_validation=False)
            self._client = aws.client("kinesis", self.runtime, config=config)

    def open(self) -> None:
        """Create the client (unless one was given or made by ``connect``) and start the sender thread."""
        self.connect()
        self._worker = threading.Thread(target=self._work, name="kinesis-writer", daemon=True)
        self._worker.start()

    def close(self) -> None:
        """Wait until every handed-over record is on the stream; raise the sender's error, if any."""
        if self._worker is not None:
            self._jobs.put(None)
            self._worker.join()
            self._worker = None
        self.raise_pending()

    def raise_pending(self) -> None:
        """Raise (once) the error that stopped the sender thread, if any."""
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, keys: pa.Array, data: pa.Array, on_put: Callable[[int], None] | None = None) -> None:
        """Hand over wire records (``data``, binary) with their partition keys, in order.

        Blocks while the sender is a few hand-overs behind (back-pressure); without ``open`` the records
        are put before this returns.
        """
        self._submit(_Batch(keys, data, on_put))

    def control(self, step: Callable[[], None]) -> None:
        """Run ``step`` on the sender thread once everything handed over before it was put."""
        self._submit(step)

    def _submit(self, job: _Job) -> None:
        self.raise_pending()
        if self._worker is None:
            self._run([job])
            return
        while True:
            try:
                self._jobs.put(job, timeout=0.1)
                return
            except queue.Full:
                self.raise_pending()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            # Everything handed over while the previous call was in flight goes out together: at a paced
            # speed that turns many small hand-overs into few calls (what the KPL's buffering does).
            jobs = [job]
            while isinstance(jobs[-1], _Batch):
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
        batches = [job for job in jobs if isinstance(job, _Batch)]
        if batches:
            self._drain(self._records(batches))
            done = time.time_ns() // 1_000
            for batch in batches:
                if batch.on_put is not None:
                    batch.on_put(done)
        for job in jobs:
            if not isinstance(job, _Batch):
                job()

    def _records(self, batches: list[_Batch]) -> dict[str, deque[PutRecord]]:
        """Wire records (or KPL aggregates) per partition key, in hand-over order."""
        keys = pa.chunked_array([b.keys for b in batches], type=pa.string())
        data = pa.chunked_array([b.data.cast(pa.large_binary()) for b in batches], type=pa.large_binary())
        queues: dict[str, deque[PutRecord]] = {}
        if self.aggregate:
            for agg in kpl.aggregate_arrays(keys, data, max_bytes=MAX_BYTES_PER_RECORD):
                queues.setdefault(agg.partition_key, deque()).append(
                    PutRecord(agg.partition_key, agg.data, agg.user_records)
                )
            return queues
        for key, payload in zip(keys.to_pylist(), data.to_pylist(), strict=True):
            if len(payload) + len(key.encode()) > MAX_BYTES_PER_RECORD:
                raise ProducerError(
                    f"an event of {len(payload)} bytes for key {key!r} exceeds Kinesis' 1 MiB record limit"
                )
            queues.setdefault(key, deque()).append(PutRecord(key, payload, 1))
        return queues

    def _drain(self, queues: dict[str, deque[PutRecord]]) -> None:
        round_ = 0
        while queues:
            batch: list[PutRecord] = []
            size = 0
            for pending in queues.values():
                head = pending[0]
                cost = len(head.data) + len(head.key.encode())
                if len(batch) == MAX_RECORDS_PER_CALL or size + cost > MAX_BYTES_PER_CALL:
                    break
                batch.append(head)
                size += cost
            failed = self._attempt(batch)
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
                        raise ProducerError(message)  # the endpoint is gone: shards or speed do not help
                    if record.attempts >= self.max_attempts:
                        raise ProducerError(
                            f"Kinesis stream {self.stream!r} kept refusing records of key {record.key!r} "
                            f"({code}: {message}) after {record.attempts} attempts; add shards "
                            "(kinesis.shards), lower --speed, or keep --aggregate on"
                        )
                base_s, max_s = self.backoff_base_ms / 1e3, self.backoff_max_ms / 1e3
                time.sleep(full_jitter_s(round_, base_s, max_s, self._rng))
            else:
                round_ = 0

    def _attempt(self, batch: list[PutRecord]) -> Failures:
        """One call's worth of records; a subclass may fail some before they reach the stream."""
        return self._put(batch)

    def _put(self, batch: list[PutRecord]) -> Failures:
        """One PutRecords call; returns the records that failed with their error code and message."""
        if not batch:
            return {}
        failed: Failures = {}
        self.calls += 1
        try:
            response = self._client.put_records(
                StreamName=self.stream,
                Records=[{"Data": r.data, "PartitionKey": r.key} for r in batch],
            )
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            message = e.response.get("Error", {}).get("Message", str(e))
            if code == "ResourceNotFoundException":
                endpoint = aws.endpoint_for("kinesis", self.runtime)
                raise ProducerError(
                    f"Kinesis stream {self.stream!r} does not exist at {endpoint}: "
                    "start and provision the stack (`coattail up`) or set kinesis.stream"
                ) from e
            if code not in _CALL_RETRYABLE:
                raise ProducerError(f"Kinesis PutRecords on {self.stream!r} failed: {code}: {message}") from e
            return {r: (code, message) for r in batch}
        except (BotoConnectionError, BotoCoreError) as e:
            doing = f"putting records on stream {self.stream!r}"
            return {r: (UNREACHABLE, aws.failure("kinesis", self.runtime, doing, e)) for r in batch}
        for record, result in zip(batch, response["Records"], strict=True):
            code = result.get("ErrorCode")
            if code is None:
                self.kinesis_records += 1
                continue
            if code not in RETRYABLE:
                raise ProducerError(
                    f"Kinesis refused a record of key {record.key!r}: {code}: {result.get('ErrorMessage')}"
                )
            failed[record] = (code, result.get("ErrorMessage", ""))
        return failed
