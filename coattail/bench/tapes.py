"""The tape a benchmark replays: given, generated (the demo's whale day), or cut from one: its first N
events, an exchange-time window, or its busiest window of a given length."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.errors import CoattailError
from core.tape import MANIFEST, Tape, TapeWriter
from core.timefmt import format_us
from replay.merge import TimeWindow


def event_times(tape: Tape) -> np.ndarray:
    """Every event's exchange time (all kinds together), sorted."""
    parts = [tape.read(kind, columns=["ts_event"]).column("ts_event").to_numpy()
             for kind in tape.manifest.kinds]
    return np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)


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
    cut = int(event_times(tape)[events - 1])
    note = f"first {events:,} events (ties at the last time included) of {source}"
    return _write(tape, TimeWindow(None, cut + 1), out, note)


def window(source: Path, start_us: int | None, end_us: int | None, out: Path) -> Path:
    """A tape of ``source``'s events with ``start_us <= ts_event < end_us`` (None: that side open), with
    the labels whose span lies within it; reused when ``out`` already holds it. A window that is empty,
    reversed or outside the tape's span is a ``CoattailError`` naming the span."""
    if (out / MANIFEST).is_file():
        return out
    tape = Tape.open(source)
    m = tape.manifest
    span = f"the tape {source} spans {format_us(m.start_us)} .. {format_us(m.end_us)}"
    if start_us is not None and end_us is not None and start_us >= end_us:
        raise CoattailError(
            f"--from {format_us(start_us)} is not before --to {format_us(end_us)}: give a window that "
            f"ends after it starts ({span})"
        )
    times = event_times(tape)
    first = 0 if start_us is None else int(np.searchsorted(times, start_us, side="left"))
    last = len(times) if end_us is None else int(np.searchsorted(times, end_us, side="left"))
    if last <= first:
        asked = f"{format_us(start_us) or 'the start'} .. {format_us(end_us) or 'the end'}"
        raise CoattailError(f"the window {asked} holds no events: {span}; pick --from/--to inside it")
    note = f"events from {format_us(start_us) or 'the start'} to {format_us(end_us) or 'the end'} of {source}"
    return _write(tape, TimeWindow(start_us, end_us), out, note)


def busiest(tape: Tape, width_us: int) -> tuple[int, int, int]:
    """The window ``[start, start + width_us)`` holding the most events: its start (an event's time, the
    earliest such window), end and event count. A tape shorter than ``width_us`` gives its whole span."""
    times = event_times(tape)
    if not times.size:
        raise CoattailError(f"the tape {tape.path} holds no events")
    counts = np.searchsorted(times, times + width_us, side="left") - np.arange(times.size)
    best = int(np.argmax(counts))
    return int(times[best]), int(times[best]) + width_us, int(counts[best])


def _write(tape: Tape, cut: TimeWindow, out: Path, note: str) -> Path:
    """``tape``'s events inside ``cut`` (in tape order, a batch at a time) and the labels whose span lies
    inside it, as a new tape at ``out``."""
    with TapeWriter(out, overwrite=True) as writer:
        for kind in tape.manifest.kinds:
            for batch in tape.iter_batches(kind, batch_rows=1_000_000):
                keep = cut.mask(batch.column("ts_event"))
                writer.write(kind, batch if keep is None else batch.filter(keep))
        m = tape.manifest
        writer.close(
            source=m.source,
            scenario=m.scenario,
            seed=m.seed,
            labels=[
                label for label in m.labels
                if (cut.start_us is None or label.start_us >= cut.start_us)
                and (cut.end_us is None or label.end_us < cut.end_us)
            ],
            faults=m.faults,
            origin=[*m.origin, note],
            extra=m.extra,
        )
    return out
