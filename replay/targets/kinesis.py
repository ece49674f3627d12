"""The Kinesis target: the production Kinesis writer (``pipeline.producer.kinesis_writer``) behind the
replay's target interface, plus the target-side faults (throttling bursts, disconnects).

Batching, KPL aggregation, per-key order and retries are the writer's; this module encodes the replayed
rows as wire records and injects the disturbances between the writer and the stream.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import pyarrow as pa

from core.errors import ProducerError, TargetError
from pipeline.config import RuntimeSettings
from pipeline.producer.kinesis_writer import Failures, KinesisWriter, PutRecord
from replay import wire
from replay.faults import Disturbance
from replay.targets.base import Target

THROTTLED: Final = "ProvisionedThroughputExceededException"


class _FaultyWriter(KinesisWriter):
    """The writer with injected throttling and disconnects in front of each call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.throttle_left = 0
        self.disconnect_pause_ms: int | None = None
        self.throttled_records = 0

    def _attempt(self, batch: list[PutRecord]) -> Failures:
        failed: Failures = {}
        to_send = batch
        if self.throttle_left:
            throttled = batch[: self.throttle_left]
            self.throttle_left -= len(throttled)
            self.throttled_records += len(throttled)
            failed.update({r: (THROTTLED, "injected throttling burst") for r in throttled})
            to_send = batch[len(throttled) :]
        if not to_send:
            return failed
        if self.disconnect_pause_ms is not None:
            pause, self.disconnect_pause_ms = self.disconnect_pause_ms, None
            time.sleep(pause / 1e3)
            failed.update({r: ("ConnectionLost", "injected disconnect") for r in to_send})
            return failed
        failed.update(self._put(to_send))
        return failed

    def disturb(self, disturbance: Disturbance) -> None:
        if disturbance.kind == "throttle":
            self.throttle_left += disturbance.records
        else:
            self.disconnect_pause_ms = disturbance.pause_ms


class KinesisTarget(Target):
    """Puts wire records (or KPL aggregates of them) on a Kinesis stream."""

    name = "kinesis"

    def __init__(self, runtime: RuntimeSettings, stream: str, **options: Any) -> None:
        """``options``: the writer's (``KinesisWriter``: aggregate, max_attempts, backoff, seed, client)."""
        super().__init__()
        self.stream = stream
        self.writer = _FaultyWriter(runtime, stream, **options)

    @property
    def calls(self) -> int:
        """PutRecords calls made."""
        return self.writer.calls

    @property
    def kinesis_records(self) -> int:
        """Kinesis records placed (aggregates count once)."""
        return self.writer.kinesis_records

    @property
    def retried_records(self) -> int:
        """Kinesis records that had to be sent again."""
        return self.writer.retried_records

    @property
    def throttled_records(self) -> int:
        """Kinesis records refused by an injected throttling burst."""
        return self.writer.throttled_records

    def connect(self) -> None:
        """Create the Kinesis client now rather than at ``open`` (``KinesisWriter.connect``)."""
        self.writer.connect()

    def open(self) -> None:
        self.writer.open()

    def close(self) -> None:
        """Wait until every handed-over record is on the stream; raise the sender's error, if any."""
        with _as_target_error():
            self.writer.close()

    def _send(self, table: pa.Table, ts_sent: int) -> None:
        with _as_target_error():
            self.writer.submit(wire.partition_keys(table), wire.encode_array(table, ts_sent))

    def _disturb(self, disturbance: Disturbance) -> bool:
        with _as_target_error():
            self.writer.control(lambda: self.writer.disturb(disturbance))
        return True


@contextmanager
def _as_target_error() -> Iterator[None]:
    """The writer's errors as the replay's: a ``TargetError`` with the same message."""
    try:
        yield
    except ProducerError as e:
        raise TargetError(str(e)) from e
