"""The tape a benchmark replays: given, generated (the demo's whale day), or cut to its first N events."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import CoattailError
from core.tape import MANIFEST, Tape, TapeWriter


def head(source: Path, events: int, out: Path) -> Path:
    """A tape of ``source``'s first ``events`` events by exchange time (both kinds together), with the
    labels whose span ends within it (events at the cut's exchange time all stay); reused when ``out``
    already holds it (deterministic)."""
    if (out / MANIFEST).is_file():
        return out
    tape = Tape.open(source)
    total = sum(tape.manifest.rows.values())
    if events <= 0 or events > total:
        raise CoattailError(
            f"--events {events:,}: the tape {source} holds {total:,} events; ask for 1..{total:,}"
        )
    tables = {kind: tape.read(kind) for kind in tape.manifest.kinds}
    times = np.sort(np.concatenate([t.column("ts_event").to_numpy() for t in tables.values()]))
    cut = int(times[events - 1])
    with TapeWriter(out, overwrite=True) as writer:
        for kind, table in tables.items():
            keep = pc.less_equal(table.column("ts_event"), pa.scalar(cut, pa.int64()))
            writer.write(kind, table.filter(keep))
        m = tape.manifest
        writer.close(
            source=m.source,
            scenario=m.scenario,
            seed=m.seed,
            labels=[label for label in m.labels if label.end_us <= cut],
            faults=m.faults,
            origin=[*m.origin, f"first {events:,} events (ties at the last time included) of {source}"],
            extra=m.extra,
        )
    return out
