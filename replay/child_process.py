"""A Kinesis replay (direct, or through the production producer) in a child process, reporting progress
and its summary back to the caller.

``coattail run`` replays while the pipeline's Spark driver runs in its own process. In that process the
replay (merging tapes, building wire records and KPL aggregates, botocore) would hold the interpreter
lock the driver needs for every micro-batch and slow the pipeline it measures; an exchange feed is
another process in production too. The child is started with ``spawn`` (no fork of a process that runs
a JVM gateway and threads).
"""

from __future__ import annotations

import multiprocessing
import pickle
import queue
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core.errors import ReplayError
from pipeline.config import RuntimeSettings
from pipeline.producer.settings import ProducerSettings
from replay.engine import Progress, Replay, ReplaySummary
from replay.faults import FaultSpec
from replay.targets.kinesis import KinesisTarget
from replay.via_ws import ProducerReport, replay_through_producer


def replay_to_kinesis(
    tapes: Sequence[Path],
    runtime: RuntimeSettings,
    stream: str,
    *,
    speed: float | None,
    faults: FaultSpec | None,
    seed: int | None,
    watermark_us: int,
    on_progress: Callable[[Progress], None] | None = None,
) -> ReplaySummary:
    """Replay ``tapes`` into ``stream`` from a child process; its errors are raised here."""
    summary: ReplaySummary = _in_child(
        _kinesis, ([str(t) for t in tapes], runtime, stream, speed, faults, seed, watermark_us), on_progress
    )
    return summary


def replay_via_producer(
    tapes: Sequence[Path],
    settings: ProducerSettings,
    runtime: RuntimeSettings,
    stream: str,
    *,
    speed: float | None,
    faults: FaultSpec | None,
    seed: int | None,
    watermark_us: int,
    on_progress: Callable[[Progress], None] | None = None,
) -> tuple[ReplaySummary, ProducerReport]:
    """``replay.via_ws.replay_through_producer`` in a child process: the replay's WebSocket server and
    the production producer behind it (one process, as an exchange and its feed handler are apart from
    the pipeline); its errors are raised here."""
    result: tuple[ReplaySummary, ProducerReport] = _in_child(
        _producer,
        ([str(t) for t in tapes], settings, runtime, stream, speed, faults, seed, watermark_us),
        on_progress,
    )
    return result


def _in_child(
    job: Callable[..., Any], args: tuple[Any, ...], on_progress: Callable[[Progress], None] | None
) -> Any:
    context = multiprocessing.get_context("spawn")
    messages: Any = context.Queue()
    child = context.Process(target=_child, args=(messages, job, args), name="coattail-replay", daemon=True)
    child.start()
    try:
        while True:
            try:
                kind, payload = messages.get(timeout=1.0)
            except queue.Empty:
                if not child.is_alive():
                    raise ReplayError(
                        f"the replay process ended without a result (exit code {child.exitcode})"
                    ) from None
                continue
            if kind == "progress":
                if on_progress is not None:
                    on_progress(payload)
            elif kind == "error":
                raise pickle.loads(payload)
            else:
                return payload
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()


def _kinesis(
    tapes: list[str], runtime: RuntimeSettings, stream: str, speed: float | None, faults: FaultSpec | None,
    seed: int | None, watermark_us: int, on_progress: Callable[[Progress], None],
) -> ReplaySummary:  # fmt: skip
    target = KinesisTarget(runtime, stream, seed=seed or 0)
    return Replay(
        tapes,
        target,
        speed=speed,
        faults=faults,
        seed=seed,
        watermark_us=watermark_us,
        on_progress=on_progress,
    ).run()


def _producer(
    tapes: list[str], settings: ProducerSettings, runtime: RuntimeSettings, stream: str, speed: float | None,
    faults: FaultSpec | None, seed: int | None, watermark_us: int, on_progress: Callable[[Progress], None],
) -> tuple[ReplaySummary, ProducerReport]:  # fmt: skip
    return replay_through_producer(
        [Path(t) for t in tapes], settings, runtime, stream, speed=speed, faults=faults, seed=seed,
        watermark_us=watermark_us, on_progress=on_progress,
    )  # fmt: skip


def _child(messages: Any, job: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        messages.put(("done", job(*args, on_progress=lambda p: messages.put(("progress", p)))))
    except BaseException as e:  # every failure goes back to the caller, which raises it
        try:
            blob = pickle.dumps(e)
        except Exception:  # an exception that cannot cross processes: keep its type and message
            blob = pickle.dumps(ReplayError(f"{type(e).__name__}: {e}"))
        messages.put(("error", blob))
