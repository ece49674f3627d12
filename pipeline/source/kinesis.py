"""Kinesis Data Streams as a Spark Structured Streaming source (Spark 4 Python Data Source API).

``spark.readStream.format("coattail-kinesis").option("stream", ...).load()`` yields ``RAW_SCHEMA`` rows:
one row per user record (KPL aggregates are de-aggregated with ``pipeline.kpl.deaggregate``).

Offsets (kept by Spark in the checkpoint's offset log) are per shard: ``{"shards": {shard_id: {"seq":
last consumed sequence number or null, "done": shard closed and fully read}}}``. A batch is the range
``(start.seq, end.seq]`` of every shard, so it can be read again, identically, from Kinesis.

How a trigger runs:

- ``latestOffset`` (driver) lists the shards, then fetches from each readable shard (open, or closed
  with records left; a child only once every parent is done, so a key's order survives a split or a
  merge) until ``max_records`` user records are gathered across shards. The fetched records are kept
  and handed to ``partitions`` for that exact range, so the data is read from Kinesis once.
- ``partitions`` makes one input partition per shard with records in the batch; ``read`` (executors)
  turns them into Arrow record batches built from lists. A partition whose records are not in the
  cache (a batch re-run after a restart) is re-read from Kinesis between its two sequence numbers.
- A small batch (at most ``driver_read_max_records`` user records, all prefetched) skips the executors:
  ``partitions`` de-aggregates and parses it right there and Spark takes the Arrow batches from
  ``getCache`` into its block manager, as it does for a ``SimpleDataSourceStreamReader``. That saves
  the Python worker round trip of every task (about 120 ms a trigger on 2 cores), which is most of
  the latency of a paced stream; big batches still fan out to one task per shard for throughput.
  Spark only takes that path from a reader that is a ``_SimpleStreamReaderWrapper`` (a private class
  of pyspark 4.0, pinned in pyproject; tests/pipeline/source check both paths), hence the base class.
- After a restart the reader continues from the last offset in the checkpoint's offset log (option
  ``checkpoint``), which is where Spark resumes.

The shard list is cached between triggers and listed again once a shard is read to its end (a split
or a merge makes children) or after ``SHARD_LIST_SECONDS``: one ``ListShards`` call less per trigger.

The reader writes a small JSON status file (option ``status_path``) after every ``latestOffset``: per
shard whether it is caught up (the last fetch returned nothing new). ``pipeline.runner`` uses it to
know when every record has been consumed.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.datasource_internal import _SimpleStreamReaderWrapper

from core.errors import PipelineError, SchemaError
from pipeline.config import RuntimeSettings
from pipeline.kpl import DIGEST_BYTES, MAGIC, deaggregate, is_aggregated
from pipeline.parse import PARSED_DDL, RAW_SCHEMA, parse_batch

FORMAT: Final = "coattail-kinesis"
RAW_DDL: Final = (
    "shard_id string, sequence_number string, sub_sequence int, partition_key string, "
    "data binary, ts_ingest bigint"
)
GET_LIMIT: Final = 10_000
ARROW_CHUNK: Final = 65_536
SHARD_LIST_SECONDS: Final = 10.0


def count_user_records(data: bytes) -> int:
    """How many user records a Kinesis record holds, from the KPL protobuf's top-level fields only.

    Cheap enough for the driver's batch budget (``ShardRecords.to_batches`` de-aggregates fully); a
    record that is not a well-formed aggregate counts as one, which is what ``to_batches`` yields for it.
    """
    if not is_aggregated(data) or len(data) < len(MAGIC) + DIGEST_BYTES:
        return 1
    buf, pos, end, count = data, len(MAGIC), len(data) - DIGEST_BYTES, 0
    try:
        while pos < end:
            tag, pos = _varint(buf, pos)
            wire = tag & 7
            if wire == 2:
                length, pos = _varint(buf, pos)
                pos += length
            elif wire == 0:
                _, pos = _varint(buf, pos)
            elif wire in (1, 5):
                pos += 8 if wire == 1 else 4
            else:
                return 1
            count += tag >> 3 == 3
    except IndexError:
        return 1
    return max(count, 1)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


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
        """De-aggregated user records as ``RAW_SCHEMA`` Arrow batches (built from lists, bounded chunks).

        A corrupt aggregate is kept whole, as one record, so that it is quarantined rather than lost.
        """
        seqs: list[str] = []
        subs: list[int] = []
        keys: list[str] = []
        datas: list[bytes] = []
        ingests: list[int | None] = []
        for seq, key, data, ingest in zip(self.seqs, self.keys, self.datas, self.ingests, strict=True):
            try:
                users = deaggregate(data, key)
            except SchemaError:
                users = [(key, data)]
            for sub, (user_key, payload) in enumerate(users):
                seqs.append(seq)
                subs.append(sub)
                keys.append(user_key)
                datas.append(payload)
                ingests.append(ingest)
            if len(seqs) >= ARROW_CHUNK:
                yield _raw_batch(shard_id, seqs, subs, keys, datas, ingests)
                seqs, subs, keys, datas, ingests = [], [], [], [], []
        if seqs:
            yield _raw_batch(shard_id, seqs, subs, keys, datas, ingests)


def _raw_batch(
    shard_id: str, seqs: list[str], subs: list[int], keys: list[str], datas: list[bytes],
    ingests: list[int | None],
) -> pa.RecordBatch:
    n = len(seqs)
    return pa.RecordBatch.from_arrays(
        [
            pa.array([shard_id] * n, type=pa.string()),
            pa.array(seqs, type=pa.string()),
            pa.array(subs, type=pa.int32()),
            pa.array(keys, type=pa.string()),
            pa.array(datas, type=pa.binary()),
            pa.array(ingests, type=pa.int64()),
        ],
        schema=RAW_SCHEMA,
    )


class ShardPartition(InputPartition):
    """One shard's slice of a batch: ``(start, end]`` sequence numbers, records when prefetched."""

    def __init__(self, shard_id: str, start: str | None, end: str, records: ShardRecords | None) -> None:
        super().__init__(shard_id)
        self.shard_id = shard_id
        self.start = start
        self.end = end
        self.records = records


class HandoverPartition(InputPartition):
    """A whole small batch handed to Spark from the driver (see the module docstring).

    Spark reads it from its block manager; only if that copy were lost would an executor ``read`` it,
    and then every shard's range is read again from Kinesis, like after a restart.
    """

    def __init__(self, shards: list[ShardPartition]) -> None:
        super().__init__("handover")
        self.shards = shards


def _runtime(options: dict[str, str]) -> RuntimeSettings:
    if options.get("runtime"):
        return RuntimeSettings.model_validate_json(options["runtime"])
    return RuntimeSettings(
        profile=options.get("profile", "lite"),
        aws_endpoint=options.get("endpoint") or None,
        region=options.get("region", "us-east-1"),
        allow_real_aws=options.get("allow_real_aws", "false") == "true",
    )


def _kinesis(options: dict[str, str]) -> Any:
    from pipeline.aws import client

    return client("kinesis", _runtime(options))


def _iterator(kinesis: Any, stream: str, shard_id: str, after: str | None) -> str:
    args: dict[str, Any] = {"StreamName": stream, "ShardId": shard_id}
    if after is None:
        args["ShardIteratorType"] = "TRIM_HORIZON"
    else:
        args.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=after)
    return str(kinesis.get_shard_iterator(**args)["ShardIterator"])


def read_range(kinesis: Any, stream: str, shard_id: str, start: str | None, end: str) -> ShardRecords:
    """Every user record of a shard with sequence number in ``(start, end]`` (deterministic re-read)."""
    out = ShardRecords()
    it: str | None = _iterator(kinesis, stream, shard_id, start)
    stop = int(end)
    while it is not None:
        resp = kinesis.get_records(ShardIterator=it, Limit=GET_LIMIT)
        for rec in resp["Records"]:
            if int(rec["SequenceNumber"]) > stop:
                return out
            out.add_kinesis_record(rec)
            if int(rec["SequenceNumber"]) == stop:
                return out
        behind = resp.get("MillisBehindLatest", 0)
        if not resp["Records"] and (behind == 0 or resp.get("NextShardIterator") is None):
            raise PipelineError(
                f"shard {shard_id} of {stream} ends before sequence number {end}: the records of this "
                "batch are gone (past the stream's retention?); start with a fresh --checkpoint"
            )
        it = resp.get("NextShardIterator")
    return out


def last_checkpointed_offset(checkpoint: str) -> dict[str, Any] | None:
    """The source offset of the latest entry of a query's offset log (None for a fresh checkpoint)."""
    offsets = Path(checkpoint) / "offsets"
    if not offsets.is_dir():
        return None
    entries = sorted((int(p.name), p) for p in offsets.iterdir() if p.name.isdigit())
    if not entries:
        return None
    lines = entries[-1][1].read_text().strip().splitlines()
    value: dict[str, Any] = json.loads(lines[-1])
    return value


def write_status(status_path: str | None, shards: dict[str, bool]) -> None:
    """Atomically write the source status file: per shard, whether the last fetch found nothing new."""
    if not status_path:
        return
    path = Path(status_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"caught_up": all(shards.values()), "shards": shards}))
    os.replace(tmp, path)


class KinesisStreamReader(_SimpleStreamReaderWrapper):
    """Per-shard sequence-number offsets; see the module docstring (and why the base class).

    None of the base class's own behaviour is used: every method Spark calls is overridden here.
    """

    def __init__(self, options: dict[str, str]) -> None:
        self.options = dict(options)
        self.stream = options["stream"]
        self.max_records = int(options.get("max_records", "200000"))
        self.driver_read_max = int(options.get("driver_read_max_records", "0"))
        self.status_path = options.get("status_path")
        self._position: dict[str, Any] | None = None
        self._iters: dict[str, tuple[str | None, str]] = {}
        self._cache: dict[tuple[str, str | None, str], ShardRecords] = {}
        self._handover: dict[str, list[pa.RecordBatch]] = {}
        self._listed: tuple[float, list[dict[str, Any]]] | None = None
        self._density: dict[str, float] = {}
        self._client: Any = None

    @property
    def kinesis(self) -> Any:
        """The boto3 Kinesis client (created on first use, through the endpoint guard)."""
        if self._client is None:
            self._client = _kinesis(self.options)
        return self._client

    def _shards(self) -> list[dict[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError

        shards: list[dict[str, Any]] = []
        args: dict[str, Any] = {"StreamName": self.stream}
        try:
            while True:
                resp = self.kinesis.list_shards(**args)
                shards += resp["Shards"]
                token = resp.get("NextToken")
                if not token:
                    return shards
                args = {"NextToken": token}
        except (BotoCoreError, ClientError) as e:
            raise PipelineError(
                f"cannot list the shards of Kinesis stream {self.stream!r}: {e}; is the stack up "
                "(`coattail up`) and the stream provisioned?"
            ) from e

    def initialOffset(self) -> dict[str, Any]:  # noqa: N802 (Spark API)
        """Every current shard from its beginning (TRIM_HORIZON)."""
        self._listed = (time.monotonic(), self._shards())
        return {"shards": {s["ShardId"]: {"seq": None, "done": False} for s in self._listed[1]}}

    def latestOffset(self) -> dict[str, Any]:  # noqa: N802 (Spark API)
        """Fetch up to ``max_records`` new user records across readable shards; their end offsets."""
        if self._position is None:
            ckpt = self.options.get("checkpoint")
            self._position = (last_checkpointed_offset(ckpt) if ckpt else None) or self.initialOffset()
        position: dict[str, dict[str, Any]] = {k: dict(v) for k, v in self._position["shards"].items()}
        if self._listed is None or time.monotonic() - self._listed[0] > SHARD_LIST_SECONDS:
            self._listed = (time.monotonic(), self._shards())
        shards = self._listed[1]
        for s in shards:
            position.setdefault(s["ShardId"], {"seq": None, "done": False})
        listed = {s["ShardId"] for s in shards}
        readable = [
            s["ShardId"]
            for s in shards
            if not position[s["ShardId"]]["done"]
            and all(
                p not in listed or position.get(p, {}).get("done", True)
                for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId"))
                if p
            )
        ]
        budget = self.max_records
        status: dict[str, bool] = {sid: position[sid]["done"] for sid in position}
        for i, shard_id in enumerate(sorted(readable)):
            share = max(1, budget // (len(readable) - i))
            start = position[shard_id]["seq"]
            records, caught_up, done = self._fetch(shard_id, start, share)
            budget -= len(records)
            status[shard_id] = caught_up or done
            if len(records):
                end = records.seqs[-1]
                self._cache[(shard_id, start, end)] = records
                position[shard_id]["seq"] = end
            if done:
                position[shard_id]["done"] = True
                self._listed = None  # its children (a split or a merge) are readable now
        # a shard waiting for its parents holds nothing readable yet: it is as caught up as they are
        parents = {s["ShardId"]: [p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId"))
                                  if p and p in listed] for s in shards}
        for shard_id in sorted(listed - set(readable)):
            if not position[shard_id]["done"]:
                status[shard_id] = all(status.get(p, True) for p in parents[shard_id])
        self._position = {"shards": position}
        self._write_status(status)
        return self._position

    def _fetch(self, shard_id: str, start: str | None, limit: int) -> tuple[ShardRecords, bool, bool]:
        """Up to about ``limit`` user records after ``start`` -> (records, caught up, shard finished)."""
        from botocore.exceptions import ClientError

        out = ShardRecords()
        cached_it, cached_pos = self._iters.get(shard_id, (None, ""))
        it = cached_it if cached_it is not None and cached_pos == (start or "") else None
        if it is None:
            it = _iterator(self.kinesis, self.stream, shard_id, start)
        per_record = self._density.get(shard_id, 100.0)  # user records per Kinesis record, learnt
        while len(out) < limit:
            want = max(1, min(GET_LIMIT, int((limit - len(out)) / per_record) + 1))
            try:
                resp = self.kinesis.get_records(ShardIterator=it, Limit=want)
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") != "ExpiredIteratorException":
                    raise PipelineError(f"get_records on {self.stream}/{shard_id} failed: {e}") from e
                it = _iterator(self.kinesis, self.stream, shard_id, out.seqs[-1] if len(out) else start)
                continue
            before = len(out)
            for rec in resp["Records"]:
                out.add_kinesis_record(rec)
            if resp["Records"]:
                per_record = max(1.0, (len(out) - before) / len(resp["Records"]))
                self._density[shard_id] = per_record
            nxt = resp.get("NextShardIterator")
            if nxt is None:
                self._iters.pop(shard_id, None)
                return out, True, True
            it = nxt
            if not resp["Records"]:
                self._iters[shard_id] = (it, out.seqs[-1] if len(out) else (start or ""))
                return out, True, False
        if out.trim(limit):
            self._iters.pop(shard_id, None)  # the iterator ran past the kept records
        else:
            self._iters[shard_id] = (it, out.seqs[-1])
        return out, False, False

    def _write_status(self, shards: dict[str, bool]) -> None:
        write_status(self.status_path, shards)

    def partitions(self, start: dict[str, Any], end: dict[str, Any]) -> Sequence[InputPartition]:
        """One partition per shard whose sequence number moved between the two offsets, or one
        ``HandoverPartition`` for a small prefetched batch (its rows wait for ``getCache``)."""
        parts: list[ShardPartition] = []
        before = start.get("shards", {})
        for shard_id, pos in sorted(end["shards"].items()):
            first = before.get(shard_id, {}).get("seq")
            last = pos.get("seq")
            if last is None or last == first:
                continue
            records = self._cache.pop((shard_id, first, last), None)
            parts.append(ShardPartition(shard_id, first, last, records))
        prefetched = [p.records for p in parts if p.records is not None]
        if not parts or len(prefetched) < len(parts) or sum(map(len, prefetched)) > self.driver_read_max:
            return parts
        self._handover[_range_key(start, end)] = [
            b for p in parts if p.records is not None for b in self._batches(p.records, p.shard_id)
        ]
        return [HandoverPartition([ShardPartition(p.shard_id, p.start, p.end, None) for p in parts])]

    # Spark's name and signature for the rows of a prefetched batch; they are Arrow batches here
    def getCache(self, start: dict[str, Any], end: dict[str, Any]) -> Iterator[pa.RecordBatch] | None:  # type: ignore[override]  # noqa: N802
        """The parsed rows of a batch ``partitions`` handed over, once; None for any other batch."""
        batches = self._handover.pop(_range_key(start, end), None)
        return None if batches is None else iter(batches)

    def _batches(self, records: ShardRecords, shard_id: str) -> Iterator[pa.RecordBatch]:
        batches = records.to_batches(shard_id)
        if self.options.get("parse") == "true":
            return (parse_batch(b) for b in batches)
        return batches

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        """Arrow batches of one shard's records (prefetched, or re-read from Kinesis)."""
        if isinstance(partition, HandoverPartition):
            return itertools.chain.from_iterable(self.read(p) for p in partition.shards)
        if not isinstance(partition, ShardPartition):
            raise PipelineError(f"the Kinesis reader got a {type(partition).__name__}, not a ShardPartition")
        records = partition.records
        if records is None:
            records = read_range(_kinesis(self.options), self.stream, partition.shard_id,
                                 partition.start, partition.end)
        return self._batches(records, partition.shard_id)

    def commit(self, end: dict[str, Any]) -> None:
        """Drop cached records of committed ranges."""
        done = {sid: pos.get("seq") for sid, pos in end.get("shards", {}).items()}
        for key in list(self._cache):
            if key[2] is not None and done.get(key[0]) is not None and int(key[2]) <= int(done[key[0]]):
                self._cache.pop(key, None)


def _range_key(start: dict[str, Any], end: dict[str, Any]) -> str:
    return json.dumps([start, end], sort_keys=True)


class KinesisDataSource(DataSource):
    """``format("coattail-kinesis")``. Options: ``stream`` (required); ``runtime`` (a
    ``RuntimeSettings`` as JSON) or ``endpoint``, ``region``, ``profile``, ``allow_real_aws``;
    ``max_records`` (user records per micro-batch); ``driver_read_max_records`` (batches up to this many
    user records skip the executors, see the module docstring; 0 never); ``checkpoint`` (the query's
    checkpoint location, to resume); ``status_path``; ``parse`` (``true``: yield ``PARSED_SCHEMA`` rows,
    parsed where the records are read, instead of raw records)."""

    @classmethod
    def name(cls) -> str:
        """The format name: ``coattail-kinesis``."""
        return FORMAT

    def schema(self) -> str:
        """``PARSED_SCHEMA`` as DDL with the option ``parse=true``, else the raw records' DDL."""
        return PARSED_DDL if self.options.get("parse") == "true" else RAW_DDL

    def streamReader(self, schema: Any) -> DataSourceStreamReader:  # noqa: N802 (Spark API)
        """A ``KinesisStreamReader`` over the options; the option ``stream`` is required."""
        if "stream" not in self.options:
            raise PipelineError("the coattail-kinesis source needs the option 'stream'")
        return KinesisStreamReader(dict(self.options))
