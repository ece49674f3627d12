"""Resuming a killed replay into Kinesis without sending twice what already reached the stream.

A replay killed mid-way has put some of the tape's events on the stream. Re-running it would put them
again (with new sequence numbers, so nothing downstream could tell them from an exchange's resends).
``events_in_stream`` reads the whole stream, every shard from its start to its tip, and returns the
identity of every event on it (kind, exchange, symbol, trade id or quote update id) with how often it is
there; ``skip_present`` drops that many occurrences of each from the merged tape (the first ones, in tape
order: a tape may hold an exchange's resends of one id), so the resumed replay sends only the rest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from core.errors import ReplayError
from pipeline.aws import client
from pipeline.config import RuntimeSettings
from pipeline.parse import parse_batch
from pipeline.source.kinesis_records import ShardRecords
from replay.merge import KIND_CODE

EventKey = tuple[int, str, str, int]
"""(kind code as in ``replay.merge.KIND_CODE``, exchange, symbol, trade id or update id)."""
_PAGE: Final = 10_000


def events_in_stream(runtime: RuntimeSettings, stream: str) -> Counter[EventKey]:
    """How often each event is on ``stream`` (unparseable records are not events: skipped)."""
    return event_keys(stream_records(runtime, stream))


def stream_records(runtime: RuntimeSettings, stream: str) -> Iterator[pa.RecordBatch]:
    """Every user record on ``stream`` (``pipeline.parse.RAW_SCHEMA``), each shard from its start to its
    tip, one shard after the other (one shard in memory at a time)."""
    from botocore.exceptions import BotoCoreError, ClientError

    kinesis = client("kinesis", runtime)
    try:
        shards = [s["ShardId"] for page in kinesis.get_paginator("list_shards").paginate(StreamName=stream)
                  for s in page["Shards"]]
        for shard in shards:
            yield from _read_shard(kinesis, stream, shard).to_batches(shard)
    except (BotoCoreError, ClientError) as e:
        raise ReplayError(
            f"cannot read Kinesis stream {stream!r}: {e}; is the stack up (`coattail status`)?"
        ) from e


def event_keys(records: Iterable[pa.RecordBatch]) -> Counter[EventKey]:
    """How often each event is among ``records`` (raw user records; unparseable ones are skipped)."""
    found: Counter[EventKey] = Counter()
    for raw in records:
        found.update(_keys(pa.Table.from_batches([parse_batch(raw)])))
    return found


def _read_shard(kinesis: Any, stream: str, shard: str) -> ShardRecords:
    out = ShardRecords()
    it: str | None = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    while it is not None:
        resp = kinesis.get_records(ShardIterator=it, Limit=_PAGE)
        for record in resp["Records"]:
            out.add_kinesis_record(record)
        if not resp["Records"] and resp.get("MillisBehindLatest", 0) == 0:
            break  # the tip: an empty page behind it is only an empty stretch of the shard
        it = resp.get("NextShardIterator")
    return out


def _keys(parsed: pa.Table) -> list[EventKey]:
    rows = parsed.filter(pc.is_null(parsed.column("reason"))).select(
        ["kind", "exchange", "symbol", "trade_id", "update_id"]).to_pylist()
    return [(KIND_CODE[r["kind"]], r["exchange"], r["symbol"],
             r["trade_id"] if r["kind"] == "trade" else r["update_id"]) for r in rows]


def skip_present(chunks: Iterator[pa.Table], present: Counter[EventKey]) -> Iterator[pa.Table]:
    """The merged chunks without the first ``present[key]`` occurrences of each event key."""
    left = Counter(present)
    for chunk in chunks:
        keys = zip(chunk.column("kind").to_pylist(), chunk.column("exchange").to_pylist(),
                   chunk.column("symbol").to_pylist(), chunk.column("trade_id").to_pylist(),
                   chunk.column("update_id").to_pylist(), strict=True)
        keep = []
        for kind, exchange, symbol, trade_id, update_id in keys:
            key = (kind, exchange, symbol, trade_id if kind == KIND_CODE["trade"] else update_id)
            sent = left[key] > 0
            if sent:
                left[key] -= 1
            keep.append(not sent)
        if all(keep):
            yield chunk
        elif any(keep):
            yield chunk.filter(pa.array(keep))
