"""The replay engine: merge tapes, inject faults, pace by exchange time, hand events to a target.

Python API (what ``coattail replay`` and the run orchestration call)::

    summary = Replay([tape_dir], MemoryTarget(), speed=parse_speed("10x")).run()
    summary.sent, summary.labels, summary.lag

Everything works on Arrow chunks; only the targets that need one record at a time go per record.
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa

from core.errors import ReplayError
from core.labels import Label
from core.tape import Tape
from replay.clock import Clock, LagSummary, Pacer, Schedule, WallClock
from replay.faults import (
    ARRIVAL_SCHEMA,
    FaultInjector,
    FaultSpec,
    Origin,
    combine_specs,
    parse_fault_spec,
)
from replay.merge import DEFAULT_BATCH_ROWS, TimeWindow, merge_tapes
from replay.resume import EventKey, skip_present
from replay.targets.base import Target

PROGRESS_EVERY_US: Final = 200_000
DEFAULT_WATERMARK_US: Final = 10_000_000


@dataclass(frozen=True)
class Progress:
    """A snapshot for a progress display."""

    sent: int
    position_us: int
    """Exchange time of the last event sent."""
    start_us: int
    end_us: int
    """The replayed span of exchange time (the window, or the tapes' span)."""
    elapsed_s: float
    lag_ms: float | None
    """The worst lag behind schedule so far (None at ``max`` speed)."""
    schedule: Schedule | None = None
    """When the replay meant to send each event (None until the first events were due)."""

    @property
    def rate(self) -> float:
        """Events per second of wall time so far."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True)
class ReplaySummary:
    """What a replay did."""

    target: str
    speed: float | None
    sent: int
    """Records handed to the target (after drops, with duplicates)."""
    elapsed_s: float
    first_ts_us: int | None
    last_ts_us: int | None
    lag: LagSummary | None
    """Lag behind schedule; None at ``max`` speed."""
    schedule: Schedule | None = None
    """When the replay meant to send each event (None when nothing was sent)."""
    labels: list[Label] = field(default_factory=list)
    """One label per fault injected for this run (``faults=``/``--faults``) and per detector effect it
    must have (docs/DETECTORS.md)."""
    tape_fault_labels: list[Label] = field(default_factory=list)
    """The same for faults the tapes' manifests asked for. A tape's own ``labels`` may already describe
    those (the synthetic generator labels its late events); these are the replay's exact account."""
    fault_counts: dict[str, int] = field(default_factory=dict)
    seed: int = 0

    @property
    def rate(self) -> float:
        """Events per second of wall time."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


class Replay:
    """One replay of one or more tapes into one target; ``skip``: events not to send (a resumed
    replay, ``replay.resume``)."""

    def __init__(
        self,
        tapes: Sequence[Path | str | Tape],
        target: Target,
        *,
        speed: float | None = None,
        window: TimeWindow | None = None,
        faults: FaultSpec | None = None,
        tape_faults: bool = True,
        seed: int | None = None,
        watermark_us: int = DEFAULT_WATERMARK_US,
        clock: Clock | None = None,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        on_progress: Callable[[Progress], None] | None = None,
        skip: Counter[EventKey] | None = None,
    ) -> None:
        if not tapes:
            raise ReplayError("nothing to replay: give at least one tape")
        self.tapes = [t if isinstance(t, Tape) else Tape.open(t) for t in tapes]
        self.target = target
        self.speed = speed
        self.window = window or TimeWindow()
        tape_specs = [
            parse_fault_spec(t.manifest.faults, f"{t.path}/manifest.json faults")
            for t in self.tapes
            if tape_faults and t.manifest.faults
        ]
        self.faults = faults or FaultSpec()
        self.tape_faults = combine_specs(tape_specs) if tape_specs else None
        tape_seed = self.tape_faults.seed if self.tape_faults is not None else None
        self.seed = next((s for s in (seed, self.faults.seed, tape_seed) if s is not None), 0)
        self.watermark_us = watermark_us
        self.clock = clock or WallClock()
        self.batch_rows = batch_rows
        self.on_progress = on_progress
        self.skip = skip

    def span(self) -> tuple[int, int]:
        """The exchange-time span this replay covers (window bounds, else the tapes' span)."""
        start = min(t.manifest.start_us for t in self.tapes)
        end = max(t.manifest.end_us for t in self.tapes)
        if self.window.start_us is not None:
            start = max(start, self.window.start_us)
        if self.window.end_us is not None:
            end = min(end, self.window.end_us)
        return start, end

    def run(self) -> ReplaySummary:
        """Replay everything; raise ``ReplayError`` (``TargetError``) when the target fails."""
        injector: FaultInjector | None = FaultInjector(
            self.faults, seed=self.seed, watermark_us=self.watermark_us, tape_spec=self.tape_faults
        )
        if injector is not None and injector.is_empty():
            injector = None
        if injector is not None:
            hint = sum(sum(t.manifest.rows.values()) for t in self.tapes)
            self.target.schedule(injector.disturbances(hint))
        chunks = merge_tapes(self.tapes, window=self.window, batch_rows=self.batch_rows)
        if self.skip:
            chunks = skip_present(chunks, self.skip)
        stream = prefetch(injector.apply(chunks) if injector is not None else _on_time(chunks))
        pacer = Pacer(self.speed, self.clock)
        start_us, end_us = self.span()
        first: int | None = None
        last: int | None = None
        t_start = self.clock.monotonic_us()
        next_report = t_start
        # closing: a target that fails stops the producer thread now, not when the generator is collected
        with self.target, closing(stream):
            for table in stream:
                sched = table.column("ts_sched").to_numpy()
                ts_event = table.column("ts_event").to_numpy()
                offset = 0
                while offset < table.num_rows:
                    due = pacer.due_count(sched, offset)
                    if due:
                        self.target.send(table.slice(offset, due), self.clock.wall_us())
                        pacer.record_sent(sched[offset : offset + due])
                        if first is None:
                            first = int(ts_event[0])
                        last = int(ts_event[offset + due - 1])
                        offset += due
                    now = self.clock.monotonic_us()
                    if self.on_progress is not None and now >= next_report:
                        next_report = now + PROGRESS_EVERY_US
                        self.on_progress(
                            Progress(
                                sent=self.target.sent,
                                position_us=last if last is not None else start_us,
                                start_us=start_us,
                                end_us=end_us,
                                elapsed_s=(now - t_start) / 1e6,
                                lag_ms=(pacer.lag.max_us or 0) / 1e3 if self.speed is not None else None,
                                schedule=pacer.schedule,
                            )
                        )
        elapsed = (self.clock.monotonic_us() - t_start) / 1e6
        labels: dict[Origin, list[Label]] = {"run": [], "tape": []}
        counts: dict[str, int] = {}
        if injector is not None:
            for disturbance, ts in self.target.applied:
                injector.label_disturbance(disturbance, ts)
            labels, counts = injector.labels, injector.counts
        summary = ReplaySummary(
            target=self.target.name,
            speed=self.speed,
            sent=self.target.sent,
            elapsed_s=elapsed,
            first_ts_us=first,
            last_ts_us=last,
            lag=LagSummary.of(pacer.lag) if self.speed is not None else None,
            schedule=pacer.schedule,
            labels=labels["run"],
            tape_fault_labels=labels["tape"],
            fault_counts=counts,
            seed=self.seed,
        )
        if self.on_progress is not None:
            self.on_progress(
                Progress(
                    sent=summary.sent,
                    position_us=last if last is not None else end_us,
                    start_us=start_us,
                    end_us=end_us,
                    elapsed_s=elapsed,
                    lag_ms=summary.lag.max_ms if summary.lag else None,
                    schedule=summary.schedule,
                )
            )
        return summary


def _on_time(chunks: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """Arrival rows without faults: scheduled at their exchange time, nothing corrupt."""
    for chunk in chunks:
        n = chunk.num_rows
        yield pa.Table.from_arrays(
            [*chunk.columns, chunk.column("ts_event"), pa.array(np.zeros(n, dtype=bool))],
            schema=ARRIVAL_SCHEMA,
        )


_DONE: Final = object()


def prefetch(chunks: Iterator[pa.Table], depth: int = 2) -> Generator[pa.Table, None, None]:
    """Produce the next chunks on a background thread while the target sends the current one.

    Reading Parquet, sorting and fault injection run mostly in Arrow (outside the GIL), so they overlap
    with the target's encoding and I/O on the second core. Order is unchanged; an error in the producer
    is raised here, in the consumer.
    """
    out: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        """Hand ``item`` to the consumer; False once the consumer stopped (it will never take it)."""
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not put(chunk):
                    return
            put(_DONE)
        except BaseException as e:  # handed to the consumer, which re-raises it
            put(e)

    worker = threading.Thread(target=produce, name="replay-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)
