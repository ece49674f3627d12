"""The Kinesis reader's record model: one shard's records of a batch, what the driver learns of a shard
while it plans a batch (``PlannedRange``), and the input partitions that carry a batch's ranges (never its
records) from the driver to where it is read."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from pyspark.sql.datasource import InputPartition

from pipeline.kpl import count_user_records
from pipeline.source.arrow_build import raw_batches


@dataclass
class ShardRecords:
    """Kinesis records of one shard, in order, with the number of user records each holds.

    ``to_batches`` de-aggregates them where the batch is read (an executor task, or ``partitions`` for a
    handed-over batch).
    """

    seqs: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    datas: list[bytes] = field(default_factory=list)
    ingests: list[int | None] = field(default_factory=list)
    users: list[int] = field(default_factory=list)

    def add_kinesis_record(self, record: dict[str, Any], users: int | None = None) -> None:
        """Append one record of a GetRecords response (``users``: its user records, when counted already)."""
        arrival = record.get("ApproximateArrivalTimestamp")
        data: bytes = record["Data"]
        self.seqs.append(record["SequenceNumber"])
        self.keys.append(record.get("PartitionKey", ""))
        self.datas.append(data)
        self.ingests.append(int(arrival.timestamp() * 1_000_000) if arrival is not None else None)
        self.users.append(count_user_records(data) if users is None else users)

    def __len__(self) -> int:
        """User records held."""
        return sum(self.users)

    def tail(self, start: int) -> ShardRecords:
        """The records from the ``start``-th on."""
        return ShardRecords(self.seqs[start:], self.keys[start:], self.datas[start:], self.ingests[start:],
                            self.users[start:])

    def to_batches(self, shard_id: str) -> Iterator[pa.RecordBatch]:
        """De-aggregated user records as ``RAW_SCHEMA`` Arrow batches (``arrow_build.raw_batches``)."""
        return raw_batches(shard_id, self.seqs, self.keys, self.datas, self.ingests)


@dataclass
class PlannedRange:
    """What ``latestOffset`` learnt of one shard while planning a batch: the last sequence number taken,
    the user records up to it, and the records themselves only while the batch may still be handed over
    (``keep``): past that bound the driver holds one GetRecords page at a time, whatever the batch size.

    ``full``: the walk stopped because the next record would pass its limit. ``parsed``: the rows of the
    range's leading records, parsed by the read-ahead (``parse_ahead``); ``records`` then holds only the
    records taken after them.
    """

    keep: int
    end: str | None = None
    users: int = 0
    records: ShardRecords | None = None
    full: bool = False
    parsed: list[pa.RecordBatch] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.keep > 0:
            self.records = ShardRecords()

    def parse_ahead(self, batches: list[pa.RecordBatch]) -> None:
        """Hold ``batches`` (the held records' rows) in place of the records, which are dropped: a walk
        that goes on from ``end`` holds only what it takes after them."""
        self.parsed = batches
        self.records = ShardRecords()

    def rebound(self, keep: int) -> bool:
        """Hold the range under another hand-over bound (the budget left when a trigger reuses a range
        the read-ahead planned); False when the records that bound keeps were not held."""
        if self.records is None and self.users <= keep:
            return False
        self.keep = keep
        if self.users > keep:
            self._drop()
        return True

    def _drop(self) -> None:
        self.records = None  # too big to hand over: the executors read it
        self.parsed = []

    def take(self, page: list[dict[str, Any]], limit: int) -> int:
        """Take the leading records of a GetRecords page that fit in ``limit`` user records (at least one
        record in all); the number of records taken."""
        for i, record in enumerate(page):
            users = count_user_records(record["Data"])
            if self.users and self.users + users > limit:
                self.full = True
                return i
            self.end = record["SequenceNumber"]
            self.users += users
            if self.records is not None:
                if self.users > self.keep:
                    self._drop()
                else:
                    self.records.add_kinesis_record(record, users)
        return len(page)


class ShardPartition(InputPartition):
    """One shard's slice of a batch: the sequence numbers ``(start, end]``, read where the task runs."""

    def __init__(self, shard_id: str, start: str | None, end: str) -> None:
        super().__init__(shard_id)
        self.shard_id = shard_id
        self.start = start
        self.end = end


class HandoverPartition(InputPartition):
    """A whole small batch handed to Spark from the driver (see ``pipeline.source.kinesis``).

    Spark reads it from its block manager (or the runner from a hand-over file, and Spark not at all);
    only if that copy were lost would an executor ``read`` it, and then every shard's range is read
    again from Kinesis, like after a restart.
    """

    def __init__(self, shards: list[ShardPartition]) -> None:
        super().__init__("handover")
        self.shards = shards


@dataclass
class ShardWalk:
    """One shard's part of a planned batch: where its walk started, the user records it could take
    (``limit``), the range it planned, and whether it ended caught up or at the shard's end."""

    start: str | None
    limit: int
    span: PlannedRange
    caught_up: bool
    done: bool

    def resumes(self, limit: int) -> bool:
        """Whether a walk from this one's start that may take ``limit`` user records goes on from this
        one's end to plan what a plain walk would: not when this one ended where a plain walk ends too
        (the shard's end, ``limit`` reached, or its own limit reached and that limit is ``limit``)."""
        return not (self.done or self.span.users >= limit or (self.span.full and limit == self.limit))
