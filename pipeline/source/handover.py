"""The driver hand-over of a small micro-batch: its Arrow batches, parsed on the driver by ``partitions``
(see ``pipeline.source.kinesis``), waiting for whoever takes them.

Two takers, one per keyed-state mode:

- ``HandoverCache``: Spark takes them with ``getCache`` into its block manager, and the batch's
  DataFrame reads them from there (state-store mode, whose keyed plan runs over that DataFrame).
- ``HandoverFiles``: the foreachBatch function of driver mode takes them from a local file and runs no
  Spark job over the batch's DataFrame at all. A small trigger's rows otherwise cross the JVM twice
  (the planner's Arrow into rows serialized into the block manager, then a job turning them back into
  Arrow for ``toArrow``): that round trip was more than half of a paced trigger.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.ipc as ipc

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


class HandoverFiles:
    """A batch's parsed rows in ``directory``, one Arrow IPC file per batch, named after its end offset.

    The end offset names the batch: Spark's batch ``n`` is the range from batch ``n - 1``'s end (the
    query's offset log) to its own, so the rows a file holds are exactly the rows of the batch whose
    logged end it names, and the taker reads that end from the offset log. A file is written whole and
    renamed into place, so a reader finds all of it or nothing; whatever finds nothing (a restart's
    re-run, which plans without prefetching; a dropped file) reads the batch through Spark as before,
    the same rows. The planner and the driver's Python share a machine wherever Spark runs (the driver
    starts the planner), so a local directory reaches both.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, end: dict[str, Any]) -> Path:
        """The file of the batch ending at ``end``."""
        digest = hashlib.sha256(json.dumps(end, sort_keys=True).encode()).hexdigest()[:32]
        return self.directory / f"{digest}.arrow"

    def put(self, end: dict[str, Any], schema: pa.Schema, batches: list[pa.RecordBatch]) -> None:
        """Write the batch ending at ``end``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.path(end)
        tmp = final.with_suffix(".tmp")
        with ipc.new_file(tmp, schema) as out:
            for batch in batches:
                out.write_batch(batch)
        os.replace(tmp, final)

    def take(self, end: dict[str, Any]) -> pa.Table | None:
        """The rows of the batch ending at ``end``, its file removed; None when there is none."""
        path = self.path(end)
        try:
            with ipc.open_file(path) as reader:
                table = reader.read_all()
        except FileNotFoundError:
            return None
        path.unlink()
        return table

    def drop(self, end: dict[str, Any]) -> None:
        """Remove the file of the batch ending at ``end`` if nobody took it."""
        self.path(end).unlink(missing_ok=True)
