"""The planner's read-ahead (driver mode): the next batch walked and parsed in a background thread of
the planner process while the driver runs the current one (``pipeline.source.kinesis``).

The planner's main thread waits on Spark's socket while the driver works, so the walk (boto3) and the
vectorised de-aggregation and parse (pyarrow, numpy) have the planner's interpreter to themselves and
run on the second core.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pipeline.source.kinesis_records import PlannedRange, ShardWalk

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
