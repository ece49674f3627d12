"""What the sources share about progress: the checkpoint's offset log (to resume where Spark resumes),
the status file ``pipeline.runner`` watches, and the key of a batch's offset range."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def last_checkpointed_offset(checkpoint: str) -> dict[str, Any] | None:
    """The source offset of the latest entry of a query's offset log (None for a fresh checkpoint)."""
    offsets = Path(checkpoint) / "offsets"
    if not offsets.is_dir():
        return None
    entries = sorted((int(p.name), p) for p in offsets.iterdir() if p.name.isdigit())
    if not entries:
        return None
    return _source_offset(entries[-1][1])


def checkpointed_offset(checkpoint: str | Path, batch_id: int) -> dict[str, Any] | None:
    """The source offset batch ``batch_id`` ends at, from the query's offset log (None if not logged)."""
    try:
        return _source_offset(Path(checkpoint) / "offsets" / str(batch_id))
    except FileNotFoundError:
        return None


def _source_offset(entry: Path) -> dict[str, Any]:
    """An offset-log entry's offset of the query's one source: its last line (after the version and
    the batch's metadata)."""
    lines = entry.read_text().strip().splitlines()
    value: dict[str, Any] = json.loads(lines[-1])
    return value


def write_status(status_path: str | None, shards: dict[str, bool]) -> None:
    """Atomically write the source status file: per shard, whether the last fetch reached the shard's tip
    (nothing new and not behind the latest record)."""
    if not status_path:
        return
    path = Path(status_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"caught_up": all(shards.values()), "shards": shards}))
    os.replace(tmp, path)


def range_key(start: dict[str, Any], end: dict[str, Any]) -> str:
    """One batch's offset range ``(start, end]`` as a hashable, order-independent key."""
    return json.dumps([start, end], sort_keys=True)
