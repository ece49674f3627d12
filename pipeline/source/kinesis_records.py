"""The Kinesis reader's record model: one shard's records of a batch, and the input partitions that
carry a batch's ranges (and, when prefetched, its records) from the driver to where it is read."""

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

    ``latestOffset`` only counts user records (for the batch budget); ``to_batches`` de-aggregates them
    where the batch is read (an executor task, or ``partitions`` for a handed-over batch).
    """

    seqs: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    datas: list[bytes] = field(default_factory=list)
    ingests: list[int | None] = field(default_factory=list)
    users: list[int] = field(default_factory=list)

    def add_kinesis_record(self, record: dict[str, Any]) -> None:
        """Append one record of a GetRecords response."""
        arrival = record.get("ApproximateArrivalTimestamp")
        data: bytes = record["Data"]
        self.seqs.append(record["SequenceNumber"])
        self.keys.append(record.get("PartitionKey", ""))
        self.datas.append(data)
        self.ingests.append(int(arrival.timestamp() * 1_000_000) if arrival is not None else None)
        self.users.append(count_user_records(data))

    def __len__(self) -> int:
        """User records held."""
        return sum(self.users)

    def trim(self, limit: int) -> bool:
        """Keep the leading records that fit in ``limit`` user records (at least one); True if any dropped."""
        total, cut = 0, 0
        for n in self.users:
            if cut and total + n > limit:
                break
            total += n
            cut += 1
        if cut == len(self.seqs):
            return False
        for column in (self.seqs, self.keys, self.datas, self.ingests, self.users):
            del column[cut:]
        return True

    def to_batches(self, shard_id: str) -> Iterator[pa.RecordBatch]:
        """De-aggregated user records as ``RAW_SCHEMA`` Arrow batches (``arrow_build.raw_batches``)."""
        return raw_batches(shard_id, self.seqs, self.keys, self.datas, self.ingests)


class ShardPartition(InputPartition):
    """One shard's slice of a batch: ``(start, end]`` sequence numbers, records when prefetched."""

    def __init__(self, shard_id: str, start: str | None, end: str, records: ShardRecords | None) -> None:
        super().__init__(shard_id)
        self.shard_id = shard_id
        self.start = start
        self.end = end
        self.records = records


class HandoverPartition(InputPartition):
    """A whole small batch handed to Spark from the driver (see ``pipeline.source.kinesis``).

    Spark reads it from its block manager; only if that copy were lost would an executor ``read`` it,
    and then every shard's range is read again from Kinesis, like after a restart.
    """

    def __init__(self, shards: list[ShardPartition]) -> None:
        super().__init__("handover")
        self.shards = shards
