"""Test kit for the replay: a helper that writes small tapes (Hypothesis strategies for events are in
``tests/replay/strategies.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from core.events import EventKind
from core.tape import Manifest, TapeWriter, tape_schema

T0 = 1_723_161_600_000_000  # 2024-08-09 00:00:00 UTC in µs

def write_tape(
    path: Path,
    trade_rows: list[dict[str, Any]],
    quote_rows: list[dict[str, Any]],
    *,
    source: str = "synthetic",
    **manifest: Any,
) -> Manifest:
    """Write a tape: rows are sorted by ``ts_event`` (stable) and numbered with one ``seq`` per tape.

    ``seq`` is given in the rows' combined order (trades first, then quotes, each by time), so ties in
    ``ts_event`` across kinds are ordered the way a recorder would have seen them.
    """
    tagged: list[tuple[EventKind, dict[str, Any]]] = [("trade", r) for r in trade_rows]
    tagged += [("quote", r) for r in quote_rows]
    tagged.sort(key=lambda kr: kr[1]["ts_event"])
    per_kind: dict[EventKind, list[dict[str, Any]]] = {"trade": [], "quote": []}
    for seq, (kind, row) in enumerate(tagged):
        per_kind[kind].append({**row, "seq": seq})
    with TapeWriter(path, overwrite=True) as writer:
        for kind, rows in per_kind.items():
            if rows:
                writer.write(kind, pa.Table.from_pylist(rows, schema=tape_schema(kind)))
        return writer.close(source=source, **manifest)
