"""The Kinesis stream reader: per-shard offsets, a batch's ranges planned on the driver without keeping its
records, partitions, and the read of each range where its task runs (how a trigger runs:
``pipeline.source.kinesis``)."""

from __future__ import annotations

import contextlib
import functools
import itertools
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa
from pyspark.sql.datasource import InputPartition
from pyspark.sql.datasource_internal import _SimpleStreamReaderWrapper

from core.errors import PipelineError
from pipeline.kpl import MAX_RECORD_BYTES
from pipeline.source.handover import HandoverCache, HandoverFiles
from pipeline.source.kinesis_records import (
    HandoverPartition,
    PlannedRange,
    ShardPartition,
    ShardRecords,
    ShardWalk,
)
from pipeline.source.offsets import last_checkpointed_offset, write_status
from pipeline.source.read_ahead import Background, PageParser, RangeKey, Walk
from pipeline.source.stream_identity import bind, describe_identity

if TYPE_CHECKING:
    from pipeline.config import RuntimeSettings

# The config, AWS and parser modules are imported where they are used: Spark imports this module in
# planner processes that only pickle the reader (plan_data_source_read), about a second each on 2 cores.

GET_LIMIT: Final = 10_000
PAGE_BYTES: Final = 2 << 20
"""Bytes one GetRecords answer is asked to hold, about (its record count, from the bytes per record
learnt on the shard; the worst case, 1 MB records, until then): it bounds what the driver holds while it
plans a batch, whatever the batch size. A shard serves 2 MB/s to all its readers, so bigger answers (AWS
allows 10 MB) would only wait longer for the shard's read quota; an emulator has no cap of its own."""
READ_PAGE_BYTES: Final = 10 << 20
"""Bytes one GetRecords answer of a task's read is asked to hold, about: what AWS gives at most. The
range is read to its end whatever the page, so the bound only caps what a page fetches past the end; an
emulator has no cap of its own, and moto answered a read asking for ``GET_LIMIT`` records with the
shard's whole backlog past the range (gigabytes in the emulator and the task at max speed)."""
SHARD_LIST_SECONDS: Final = 10.0


def _runtime(options: dict[str, str]) -> RuntimeSettings:
    from pipeline.config import RuntimeSettings

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


@functools.cache
def _task_kinesis(options: tuple[tuple[str, str], ...]) -> Any:
    """One client per source options in a task's Python worker (Spark reuses the worker across tasks,
    and creating a client costs more than a small range's reads)."""
    return _kinesis(dict(options))


@contextlib.contextmanager
def _translated(options: dict[str, str], doing: str) -> Iterator[None]:
    """Turn an AWS failure that outlived the client's retry policy (``pipeline.aws.MAX_ATTEMPTS``:
    throttling, transport) into a ``PipelineError`` naming the service, the endpoint and what to do."""
    from botocore.exceptions import BotoCoreError, ClientError

    from pipeline.aws import failure

    try:
        yield
    except (BotoCoreError, ClientError) as e:
        raise PipelineError(failure("kinesis", _runtime(options), doing, e)) from e


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
    record_bytes = MAX_RECORD_BYTES  # the worst case until a page tells
    while it is not None:
        want = max(1, min(GET_LIMIT, READ_PAGE_BYTES // record_bytes))
        resp = kinesis.get_records(ShardIterator=it, Limit=want)
        if resp["Records"]:
            record_bytes = max(1, sum(len(r["Data"]) for r in resp["Records"]) // len(resp["Records"]))
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


class KinesisStreamReader(_SimpleStreamReaderWrapper):
    """Per-shard sequence-number offsets; see ``pipeline.source.kinesis`` (and why the base class).

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
        self._cache: dict[RangeKey, PlannedRange] = {}
        self._handover = HandoverCache()
        folder = options.get("handover_dir")
        self._files = HandoverFiles(Path(folder)) if folder else None
        if options.get("read_ahead") == "true" and self._files is None:
            raise PipelineError("the coattail-kinesis option read_ahead needs handover_dir (driver mode)")
        self.read_ahead = options.get("read_ahead") == "true"
        self._ahead: Background[Walk] | None = None
        self._listed: tuple[float, list[dict[str, Any]]] | None = None
        self._density: dict[str, float] = {}
        self._record_bytes: dict[str, int] = {}
        self._client: Any = None
        self._bound = False

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
        except ClientError as e:
            raise PipelineError(
                f"cannot list the shards of Kinesis stream {self.stream!r}: {e}; is the stack up "
                "(`coattail up`) and the stream provisioned?"
            ) from e
        except BotoCoreError as e:
            from pipeline.aws import failure

            doing = f"listing the shards of stream {self.stream!r}"
            raise PipelineError(failure("kinesis", _runtime(self.options), doing, e)) from e

    def initialOffset(self) -> dict[str, Any]:  # noqa: N802 (Spark API)
        """Every current shard from its beginning (TRIM_HORIZON)."""
        self._listed = (time.monotonic(), self._shards())
        return {"shards": {s["ShardId"]: {"seq": None, "done": False} for s in self._listed[1]}}

    def latestOffset(self) -> dict[str, Any]:  # noqa: N802 (Spark API)
        """Fetch up to ``max_records`` new user records across readable shards; their end offsets.

        With the read-ahead on, the walk starts from what the read-ahead planned and parsed while the
        last batch ran (if it started where this walk does) and goes on where that stopped short of the
        budget; a failure of the read-ahead is raised here, with nothing of its walk kept.
        """
        if self._position is None:
            ckpt = self.options.get("checkpoint")
            self._bind_stream()
            self._position = (last_checkpointed_offset(ckpt) if ckpt else None) or self.initialOffset()
        ahead, self._ahead = self._ahead, None
        planned = ahead.take() if ahead is not None else None
        if self._listed is None or time.monotonic() - self._listed[0] > SHARD_LIST_SECONDS:
            self._listed = (time.monotonic(), self._shards())
        start = self._position["shards"]
        prior = planned.shards if planned is not None and planned.start == start else {}
        walk = self._walk(start, self._listed[1], prior)
        if walk.ended:
            self._listed = None  # its children (a split or a merge) are readable now
        self._cache.update(walk.kept)
        self._position = {"shards": walk.position}
        self._write_status(walk.status)
        return self._position

    def _walk(
        self, start: dict[str, dict[str, Any]], shards: list[dict[str, Any]], prior: dict[str, ShardWalk],
        parser: PageParser | None = None,
    ) -> Walk:
        """Plan a batch from ``start`` over the listed ``shards``: every readable shard walked in
        turn for its share of the budget left, going on from its ``prior`` walk (the read-ahead's)
        where that planned the same shard from the same position (``ShardWalk.resumes``); each page's
        records taken go to ``parser`` if given."""
        position: dict[str, dict[str, Any]] = {k: dict(v) for k, v in start.items()}
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
        keep = self.driver_read_max  # user records the driver may still hold for a hand-over
        kept: dict[RangeKey, PlannedRange] = {}
        walks: dict[str, ShardWalk] = {}
        ended = False
        status: dict[str, bool] = {sid: position[sid]["done"] for sid in position}
        for i, shard_id in enumerate(sorted(readable)):
            share = max(1, budget // (len(readable) - i))
            first = position[shard_id]["seq"]
            walked = prior.get(shard_id)
            if walked is not None and walked.start == first and walked.span.users <= share \
                    and walked.span.rebound(keep):
                go_on = walked.resumes(share)
            else:
                walked, go_on = ShardWalk(first, share, PlannedRange(keep), caught_up=False, done=False), True
            if go_on:
                with _translated(self.options, f"reading shard {shard_id} of stream {self.stream!r}"):
                    walked.caught_up, walked.done = self._plan(shard_id, first, walked.span, share, parser)
            walks[shard_id] = walked
            span = walked.span
            budget -= span.users
            status[shard_id] = walked.caught_up or walked.done
            if span.end is not None:
                position[shard_id]["seq"] = span.end
                if span.records is None:
                    keep = 0  # the batch is too big to hand over: hold none of it
                    kept.clear()
                else:
                    kept[(shard_id, first, span.end)] = span
                    keep -= span.users
            if walked.done:
                position[shard_id]["done"] = True
                ended = True
        # a shard waiting for its parents holds nothing readable yet: it is as caught up as they are
        parents = {s["ShardId"]: [p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId"))
                                  if p and p in listed] for s in shards}
        for shard_id in sorted(listed - set(readable)):
            if not position[shard_id]["done"]:
                status[shard_id] = all(status.get(p, True) for p in parents[shard_id])
        return Walk(start, position, status, walks, kept, ended)

    def _read_ahead(self, start: dict[str, dict[str, Any]], shards: list[dict[str, Any]]) -> Walk:
        """The next batch from ``start``, planned as ``latestOffset`` would plan it now, its held
        records parsed (``PlannedRange.parse_ahead``). Runs in the read-ahead's thread."""
        with PageParser(self._batches) as parser:
            walk = self._walk(start, shards, {}, parser)
            parser.finish(walk)
        return walk

    def _bind_stream(self) -> None:
        """Once per reader: refuse a checkpoint written against another incarnation of the stream
        (``pipeline.source.stream_identity``), before any of its offsets is used."""
        ckpt = self.options.get("checkpoint")
        if ckpt and not self._bound:
            bind(Path(ckpt), describe_identity(self.kinesis, self.stream))
            self._bound = True

    def _plan(
        self, shard_id: str, start: str | None, span: PlannedRange, limit: int, parser: PageParser | None
    ) -> tuple[bool, bool]:
        """Walk ``span`` on (from its end, or ``start``) to about ``limit`` user records after ``start``
        -> (caught up, shard finished); its records are kept only while they are at most its ``keep``
        user records (``PlannedRange``), and each page's go to ``parser`` if given.

        Caught up: the last GetRecords page was empty and at the shard's tip (``MillisBehindLatest`` 0).
        """
        from botocore.exceptions import ClientError

        span.full = False
        cached_it, cached_pos = self._iters.get(shard_id, (None, ""))
        it = cached_it if cached_it is not None and cached_pos == (span.end or start or "") else None
        if it is None:
            it = _iterator(self.kinesis, self.stream, shard_id, span.end or start)
        per_record = self._density.get(shard_id, 100.0)  # user records per Kinesis record, learnt
        while span.users < limit:
            fits = PAGE_BYTES // self._record_bytes.get(shard_id, MAX_RECORD_BYTES)
            want = max(1, min(GET_LIMIT, fits, int((limit - span.users) / per_record) + 1))
            try:
                resp = self.kinesis.get_records(ShardIterator=it, Limit=want)
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") != "ExpiredIteratorException":
                    raise
                it = _iterator(self.kinesis, self.stream, shard_id, span.end or start)
                continue
            page = resp["Records"]
            before = span.users
            taken = span.take(page, limit)
            if taken and parser is not None:
                parser.taken(shard_id, span)
            if taken:
                per_record = max(1.0, (span.users - before) / taken)
                self._density[shard_id] = per_record
                self._record_bytes[shard_id] = max(1, sum(len(r["Data"]) for r in page) // len(page))
            if taken < len(page):
                self._iters.pop(shard_id, None)  # the iterator ran past the records taken
                return False, False
            nxt = resp.get("NextShardIterator")
            if nxt is None:
                self._iters.pop(shard_id, None)
                return True, True
            it = nxt
            if not page:
                # An empty page is not the tip on real Kinesis: it also comes back while the iterator
                # crosses an empty stretch of the shard, and then MillisBehindLatest is above 0 (the
                # next trigger goes on from the saved iterator). An emulator may omit the field (moto
                # sends 0 on an empty page): a missing one counts as 0, else such a stream never goes idle.
                self._iters[shard_id] = (it, span.end or start or "")
                return resp.get("MillisBehindLatest", 0) == 0, False
            if len(page) < want and resp.get("MillisBehindLatest") == 0:
                # the page ends at the shard's tip: asking again would most likely get an empty page, one
                # round trip per shard in every paced trigger; what arrives meanwhile is the next
                # trigger's. Not reported caught up: the next trigger's empty page says that. A full
                # page goes on: moto counts MillisBehindLatest in whole ms, 0 inside one put's records.
                break
        self._iters[shard_id] = (it, span.end or start or "")
        return False, False

    def _write_status(self, shards: dict[str, bool]) -> None:
        write_status(self.status_path, shards)

    def partitions(self, start: dict[str, Any], end: dict[str, Any]) -> Sequence[InputPartition]:
        """One partition per shard whose sequence number moved between the two offsets, or one
        ``HandoverPartition`` for a small prefetched batch (its rows wait for ``getCache``, or in a
        file, after which the read-ahead starts on the next batch)."""
        self._bind_stream()  # a restart re-runs its last logged batch before asking for new offsets
        parts: list[ShardPartition] = []
        prefetched: list[PlannedRange] = []
        before = start.get("shards", {})
        for shard_id, pos in sorted(end["shards"].items()):
            first = before.get(shard_id, {}).get("seq")
            last = pos.get("seq")
            if last is None or last == first:
                continue
            parts.append(ShardPartition(shard_id, first, last))
            span = self._cache.pop((shard_id, first, last), None)
            if span is not None:
                prefetched.append(span)
        held = sum(span.users for span in prefetched)
        if not parts or len(prefetched) < len(parts) or held > self.driver_read_max:
            return parts
        pairs = zip(parts, prefetched, strict=True)
        batches = [b for p, span in pairs for b in self._held_rows(span, p.shard_id)]
        if self._files is not None:
            from pipeline.record_schema import PARSED_SCHEMA, RAW_SCHEMA

            schema = PARSED_SCHEMA if self.options.get("parse") == "true" else RAW_SCHEMA
            self._files.put(end, schema, batches)
            self._start_read_ahead(end)
        else:
            self._handover.put(start, end, batches)
        return [HandoverPartition(parts)]

    def _held_rows(self, span: PlannedRange, shard_id: str) -> Iterator[pa.RecordBatch]:
        """A held range's rows: those the read-ahead parsed, then its records taken after them."""
        if span.records is None:
            return iter(span.parsed)
        return itertools.chain(span.parsed, self._batches(span.records, shard_id))

    def _start_read_ahead(self, end: dict[str, Any]) -> None:
        """With the read-ahead on, plan and parse the batch after ``end`` in the background, if
        ``end`` is where the next ``latestOffset`` starts (not a restart's re-run of a logged batch)."""
        if not self.read_ahead or self._ahead is not None or self._listed is None:
            return
        if self._position != end:
            return
        start = {k: dict(v) for k, v in end["shards"].items()}
        shards = self._listed[1]
        self._ahead = Background(lambda: self._read_ahead(start, shards), name="kinesis-read-ahead")

    # Spark's name and signature for the rows of a prefetched batch; they are Arrow batches here
    def getCache(self, start: dict[str, Any], end: dict[str, Any]) -> Iterator[pa.RecordBatch] | None:  # type: ignore[override]  # noqa: N802
        """The parsed rows of a batch ``partitions`` handed over, once; None for any other batch."""
        batches = self._handover.take(start, end)
        return None if batches is None else iter(batches)

    def _batches(self, records: ShardRecords, shard_id: str) -> Iterator[pa.RecordBatch]:
        batches = records.to_batches(shard_id)
        if self.options.get("parse") == "true":
            from pipeline.parse import parse_batch

            return (parse_batch(b) for b in batches)
        return batches

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        """Arrow batches of one shard's planned range, read from Kinesis where the task runs."""
        if isinstance(partition, HandoverPartition):
            return itertools.chain.from_iterable(self.read(p) for p in partition.shards)
        if not isinstance(partition, ShardPartition):
            raise PipelineError(f"the Kinesis reader got a {type(partition).__name__}, not a ShardPartition")
        doing = (f"reading shard {partition.shard_id} of stream {self.stream!r} between sequence numbers "
                 f"{partition.start} and {partition.end}")
        with _translated(self.options, doing):
            records = read_range(_task_kinesis(tuple(sorted(self.options.items()))), self.stream,
                                 partition.shard_id, partition.start, partition.end)
        return self._batches(records, partition.shard_id)

    def commit(self, end: dict[str, Any]) -> None:
        """Drop cached records of committed ranges, and the hand-over file of the batch ending at ``end``
        if its taker read the batch through Spark instead."""
        if self._files is not None:
            self._files.drop(end)
        done = {sid: pos.get("seq") for sid, pos in end.get("shards", {}).items()}
        for key in list(self._cache):
            if key[2] is not None and done.get(key[0]) is not None and int(key[2]) <= int(done[key[0]]):
                self._cache.pop(key, None)
