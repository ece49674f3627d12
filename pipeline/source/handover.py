"""The driver hand-over cache: the Arrow batches of a small micro-batch, parsed on the driver by
``partitions`` and waiting for Spark to take them with ``getCache`` (see ``pipeline.source.kinesis``)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

import pyarrow as pa

from pipeline.source.offsets import range_key

CAPACITY: Final = 2
"""Batches held at most. pyspark 4.0 calls ``getCache`` right after ``partitions``, so one is pending at
a time; the bound is for a Spark that stops calling it (another version, a planning step that failed)."""


class HandoverCache:
    """Batches keyed by their offset range, taken once, the oldest dropped beyond ``capacity``.

    Dropping loses nothing: ``getCache`` then answers None, and Spark reads the batch's
    ``HandoverPartition`` on an executor, which reads its ranges again from Kinesis.
    """

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._batches: OrderedDict[str, list[pa.RecordBatch]] = OrderedDict()

    def put(self, start: dict[str, Any], end: dict[str, Any], batches: list[pa.RecordBatch]) -> None:
        """Hold the batches of the range ``(start, end]``; drop the oldest held beyond the capacity."""
        key = range_key(start, end)
        self._batches.pop(key, None)
        self._batches[key] = batches
        while len(self._batches) > self.capacity:
            self._batches.popitem(last=False)

    def take(self, start: dict[str, Any], end: dict[str, Any]) -> list[pa.RecordBatch] | None:
        """The batches of the range ``(start, end]``, removed from the cache; None if not held."""
        return self._batches.pop(range_key(start, end), None)

    def __len__(self) -> int:
        """Batches held."""
        return len(self._batches)
