"""The planner's read-ahead (driver mode): the next batch walked and parsed in a background thread of
the planner process while the driver runs the current one (``pipeline.source.kinesis``).

The planner's main thread waits on Spark's socket while the driver works, so the walk (boto3) and the
vectorised de-aggregation and parse (pyarrow, numpy) have the planner's interpreter to themselves and
run on the second core. The walk hands what each GetRecords page took to a parser thread
(``PageParser``), so a page is parsed while the walk waits for the next one.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pyarrow as pa

from pipeline.source.kinesis_records import PlannedRange, ShardRecords, ShardWalk

T = TypeVar("T")

RangeKey = tuple[str, str | None, str]
"""A planned shard range: the shard, the sequence number it starts after, the last one in it."""


@dataclass
class Walk:
    """A batch planned across shards from ``start``: its end offsets (``position``), the per-shard
    caught-up status, every shard's walk, the ranges whose records are held for the hand-over
    (``kept``), and whether a shard was read to its end (its children are readable next)."""

    start: dict[str, dict[str, Any]]
    position: dict[str, dict[str, Any]]
    status: dict[str, bool]
    shards: dict[str, ShardWalk]
    kept: dict[RangeKey, PlannedRange]
    ended: bool


class Background(Generic[T]):
    """``work`` run once in a daemon thread (a planner that Spark stops must not wait for it); its
    result, or the exception it raised, is taken once, by the caller's thread."""

    def __init__(self, work: Callable[[], T], name: str) -> None:
        self._result: tuple[T] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(work,), name=name, daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[], T]) -> None:
        try:
            self._result = (work(),)
        except BaseException as e:  # handed to the taker: a failure here is never lost
            self._error = e

    def take(self) -> T:
        """Wait for the work; its result, or raise what it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None  # the work either returned or raised
        return self._result[0]


Parse = Callable[[ShardRecords, str], Iterator[pa.RecordBatch]]
"""Records of a shard -> their rows (the reader's de-aggregation and parse)."""


class PageParser:
    """Parses the records a walk takes, page by page, in a thread of its own (the walk mostly waits
    for GetRecords answers meanwhile); ``finish`` hands each held range its rows, in order."""

    def __init__(self, parse: Parse) -> None:
        self._parse = parse
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kinesis-parse-ahead")
        self._sent: dict[int, tuple[int, list[Future[list[pa.RecordBatch]]]]] = {}

    def taken(self, shard_id: str, span: PlannedRange) -> None:
        """Send the records ``span`` took since the last call to the parser."""
        if span.records is None:
            return  # too big to hand over: nothing of it is parsed here
        sent, parts = self._sent.get(id(span), (0, []))
        if len(span.records.seqs) > sent:
            work = functools.partial(self._rows, span.records.tail(sent), shard_id)
            parts.append(self._pool.submit(work))
        self._sent[id(span)] = (len(span.records.seqs), parts)

    def _rows(self, records: ShardRecords, shard_id: str) -> list[pa.RecordBatch]:
        return list(self._parse(records, shard_id))

    def finish(self, walk: Walk) -> None:
        """Give every range ``walk`` holds its parsed rows (``PlannedRange.parse_ahead``), waiting for
        the parser; raises what a parse raised."""
        for span in walk.kept.values():
            if span.records is not None:
                _, parts = self._sent.get(id(span), (0, []))
                span.parse_ahead([batch for part in parts for batch in part.result()])

    def __enter__(self) -> PageParser:
        return self

    def __exit__(self, *_: object) -> None:
        self._pool.shutdown(cancel_futures=True)
