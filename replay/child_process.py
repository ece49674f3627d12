"""A Kinesis replay (direct, or through the production producer) in a child process, reporting progress
and its summary back to the caller.

``coattail run`` replays while the pipeline's Spark driver runs in its own process. In that process the
replay (merging tapes, building wire records and KPL aggregates, botocore) would hold the interpreter
lock the driver needs for every micro-batch and slow the pipeline it measures; an exchange feed is
another process in production too. The child is started with ``spawn`` (no fork of a process that runs
a JVM gateway and threads).

A spawned child imports its modules (and the parent's main module) from scratch: seconds on a loaded
machine. ``prepare_kinesis`` and ``prepare_producer`` spawn it ahead of its replay: it imports, opens
its tapes and its client, then waits until ``ReplayChild.run`` releases it, so a caller that starts the
child before the pipeline has it ready when the pipeline is (``coattail run``). The replay's clock
starts at the release.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from core.arrow_memory import use_system_allocator
from core.errors import ReplayError
from pipeline.config import RuntimeSettings
from pipeline.producer.settings import ProducerSettings
from replay.engine import Progress, Replay, ReplaySummary
from replay.faults import FaultSpec
from replay.targets.kinesis import KinesisTarget
from replay.via_ws import ProducerReport, replay_through_producer

T = TypeVar("T")


class ReplayChild(Generic[T]):
    """A replay's child process, spawned now and waiting to be released by ``run``."""

    def __init__(self, job: Callable[..., T], args: tuple[Any, ...]) -> None:
        context = multiprocessing.get_context("spawn")
        self._ready = context.Event()
        self._go = context.Event()
        self._messages: Any = context.Queue()
        self._child = context.Process(
            target=_child, args=(self._messages, self._ready, self._go, job, args), name="coattail-replay",
            daemon=True,
        )  # fmt: skip
        self._child.start()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the child has its tapes and client open and waits for ``run``; False on timeout
        (also when setting up failed: ``run`` raises that)."""
        return bool(self._ready.wait(timeout))

    def run(self, on_progress: Callable[[Progress], None] | None = None) -> T:
        """Release the child and wait for its replay; its progress goes to ``on_progress``, its errors
        are raised here."""
        self._go.set()
        try:
            while True:
                try:
                    kind, payload = self._messages.get(timeout=1.0)
                except queue.Empty:
                    if not self._child.is_alive():
                        raise ReplayError(
                            f"the replay process ended without a result (exit code {self._child.exitcode})"
                        ) from None
                    continue
                if kind == "progress":
                    if on_progress is not None:
                        on_progress(payload)
                elif kind == "error":
                    raise pickle.loads(payload)
                else:
                    result: T = payload
                    return result
        finally:
            self.cancel(grace_s=10)

    def cancel(self, grace_s: float = 0.0) -> None:
        """End the child (after ``grace_s`` to finish on its own): a replay that will not run, or is over."""
        self._child.join(timeout=grace_s)
        if self._child.is_alive():
            self._child.kill()
            self._child.join()


def prepare_kinesis(
    tapes: Sequence[Path],
    runtime: RuntimeSettings,
    stream: str,
    *,
    speed: float | None,
    faults: FaultSpec | None,
    seed: int | None,
    watermark_us: int,
) -> ReplayChild[ReplaySummary]:
    """A child that will replay ``tapes`` into ``stream`` once run."""
    args = ([str(t) for t in tapes], runtime, stream, speed, faults, seed, watermark_us)
    return ReplayChild(_kinesis, args)


def prepare_producer(
    tapes: Sequence[Path],
    settings: ProducerSettings,
    runtime: RuntimeSettings,
    stream: str,
    *,
    speed: float | None,
    faults: FaultSpec | None,
    seed: int | None,
    watermark_us: int,
) -> ReplayChild[tuple[ReplaySummary, ProducerReport]]:
    """A child that will run ``replay.via_ws.replay_through_producer`` once run: the replay's WebSocket
    server and the production producer behind it (one process, as an exchange and its feed handler are
    apart from the pipeline)."""
    return ReplayChild(
        _producer, ([str(t) for t in tapes], settings, runtime, stream, speed, faults, seed, watermark_us)
    )


def _kinesis(
    tapes: list[str], runtime: RuntimeSettings, stream: str, speed: float | None, faults: FaultSpec | None,
    seed: int | None, watermark_us: int, on_progress: Callable[[Progress], None],
    released: Callable[[], None],
) -> ReplaySummary:  # fmt: skip
    target = KinesisTarget(runtime, stream, seed=seed or 0)
    target.connect()
    replay = Replay(
        tapes,
        target,
        speed=speed,
        faults=faults,
        seed=seed,
        watermark_us=watermark_us,
        on_progress=on_progress,
    )
    released()
    return replay.run()


def _producer(
    tapes: list[str], settings: ProducerSettings, runtime: RuntimeSettings, stream: str, speed: float | None,
    faults: FaultSpec | None, seed: int | None, watermark_us: int, on_progress: Callable[[Progress], None],
    released: Callable[[], None],
) -> tuple[ReplaySummary, ProducerReport]:  # fmt: skip
    released()
    return replay_through_producer(
        [Path(t) for t in tapes], settings, runtime, stream, speed=speed, faults=faults, seed=seed,
        watermark_us=watermark_us, on_progress=on_progress,
    )  # fmt: skip


def _child(messages: Any, ready: Any, go: Any, job: Callable[..., Any], args: tuple[Any, ...]) -> None:
    def report(progress: Progress) -> None:
        messages.put(("progress", progress))

    def released() -> None:
        ready.set()
        go.wait()

    use_system_allocator()  # this process only moves Arrow data: see core.arrow_memory
    try:
        messages.put(("done", job(*args, on_progress=report, released=released)))
    except BaseException as e:  # every failure goes back to the caller, which raises it
        try:
            blob = pickle.dumps(e)
        except Exception:  # an exception that cannot cross processes: keep its type and message
            blob = pickle.dumps(ReplayError(f"{type(e).__name__}: {e}"))
        messages.put(("error", blob))
    # The outcome is the caller's once the queue has flushed it; the interpreter's own teardown of this
    # process (modules, arrays, thread pools) took 0.9-1.6 s of CPU beside the pipeline it measures.
    messages.close()
    messages.join_thread()
    os._exit(0)
