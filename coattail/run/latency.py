"""Latency of every event, from its scheduled send time, by stage: the run's one latency measurement.

Each event's latency starts at its **scheduled** send time (its exchange time mapped through the replay's
``Schedule``), so a replay that falls behind cannot hide latency. Per micro-batch, with the events' own
stamps (``ts_sent``, ``ts_ingest``) and the batch's ``BatchTiming`` and commit time, vectorised code adds
each event's duration to one ``LogHistogram`` per stage (no sampling, no per-event Python):

- ``replay``: scheduled -> sent (``ts_sent``; through ``--via ws`` the producer stamps it);
- ``kinesis``: sent -> Kinesis arrival (``ts_ingest``);
- ``wait``: Kinesis arrival -> the trigger that read it started;
- ``trigger``: trigger start -> detector results available;
- ``sinks``: results available -> the batch's rows committed to the tables;
- ``results``: scheduled -> results available (what users mean by detection latency);
- ``freshness``: scheduled -> rows committed (visible to a query);
- ``alert``: an alert's ``ts_sent`` (of the event that produced it) -> written to DynamoDB.

Events are the valid ones and the quarantined ones that carry an exchange time; quarantined records
whose payload gave none have no schedule. At ``max`` speed every event is due at the start, so the
figures measure the queue behind the whole tape: ``queueing`` says so, and the summary and report show
them apart from a paced run's latency. Injected delays (``--faults``) count as latency: the event
happened at its exchange time.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa

from core.histogram import RELATIVE_ERROR, LogHistogram
from pipeline.engine import BatchResult
from replay.clock import Schedule

STAGES: Final = {
    "replay": "scheduled -> sent",
    "kinesis": "sent -> Kinesis arrival",
    "wait": "Kinesis arrival -> trigger start",
    "trigger": "trigger start -> results available",
    "sinks": "results available -> rows committed",
    "results": "scheduled -> results available",
    "freshness": "scheduled -> rows committed",
    "alert": "alert sent -> DynamoDB written",
}
"""Every stage's name and what it measures, in display order."""
HEADLINE: Final = (("results", "p99"), ("alert", "p50"))
"""The paced run's headline figures: per-event p99 to results, alerts' p50 to DynamoDB (issue 22's goals)."""
LIVE_STAGES: Final = ("results", "freshness")
"""The stages a live run's dashboard shows as they change."""


@dataclass(frozen=True)
class _Batch:
    """What a batch's later commit needs: its events' scheduled times and when its results were ready."""

    due_us: np.ndarray
    results_us: int


def _column(table: pa.Table, name: str) -> np.ndarray:
    """``name`` as int64 with nulls as ``-1`` (the caller masks them)."""
    return np.asarray(table.column(name).fill_null(-1).to_numpy(), dtype=np.int64)


class LatencyRecorder:
    """Fed by the pipeline runner's ``on_batch`` and ``on_commit`` and the replay's schedule; thread-safe.

    Batches that arrive before the replay reported its schedule wait (they are the first one or two)."""

    def __init__(self) -> None:
        self.histograms = {name: LogHistogram() for name in STAGES}
        self.schedule: Schedule | None = None
        self._lock = threading.Lock()
        self._early: list[BatchResult] = []
        self._uncommitted: dict[int, _Batch] = {}
        self._commits: dict[int, int] = {}
        self.committed_us: dict[int, int] = {}
        """Batch id -> when its tables were committed (wall µs)."""

    def set_schedule(self, schedule: Schedule) -> None:
        """The replay's schedule (once; later calls are ignored); measures the batches that waited."""
        with self._lock:
            if self.schedule is not None:
                return
            self.schedule = schedule
            early, self._early = self._early, []
            for result in early:
                self._measure(result)

    def on_batch(self, result: BatchResult) -> None:
        """A routed batch (``result.timing`` set by the runner)."""
        with self._lock:
            if self.schedule is None:
                self._early.append(result)
            else:
                self._measure(result)

    def on_commit(self, batch_ids: Sequence[int], committed_us: int) -> None:
        """The tables of ``batch_ids`` were committed at ``committed_us``."""
        with self._lock:
            for batch_id in batch_ids:
                self.committed_us.setdefault(batch_id, committed_us)
                batch = self._uncommitted.pop(batch_id, None)
                if batch is None:  # the commit overtook on_batch (or the batch still waits for the schedule)
                    self._commits[batch_id] = committed_us
                else:
                    self._commit(batch, committed_us)

    def _measure(self, result: BatchResult) -> None:
        timing = result.timing
        assert timing is not None and self.schedule is not None, "the runner stamps every routed batch"
        # the executors wrote the bronze tables (pipeline.keyed_writes): the driver holds their stamps
        parts = ([result.stamps] if result.stamps is not None
                 else [result.tables[name] for name in ("trades", "quotes", "quarantine")])
        ts_event, sent, ingest = (
            np.concatenate([
                _column(t, c) if c in t.column_names else np.full(t.num_rows, -1, dtype=np.int64)
                for t in parts
            ])
            for c in ("ts_event", "ts_sent", "ts_ingest")
        )
        timed = ts_event >= 0
        due = self.schedule.due_wall_us(ts_event[timed])
        sent, ingest = sent[timed], ingest[timed]
        has_sent, has_ingest = sent >= 0, ingest >= 0
        h = self.histograms
        h["replay"].add(sent[has_sent] - due[has_sent])
        h["kinesis"].add((ingest - sent)[has_sent & has_ingest])
        h["wait"].add(timing.started_us - ingest[has_ingest])
        h["trigger"].add(np.array([timing.results_us - timing.started_us]), weight=int(due.size))
        h["results"].add(timing.results_us - due)
        alerts = result.alerts
        written, alert_sent = _column(alerts, "ts_written"), _column(alerts, "ts_sent")
        stamped = (written >= 0) & (alert_sent >= 0)
        h["alert"].add((written - alert_sent)[stamped])
        batch = _Batch(due, timing.results_us)
        committed = self._commits.pop(timing.batch_id, None)
        if committed is None:
            self._uncommitted[timing.batch_id] = batch
        else:
            self._commit(batch, committed)

    def _commit(self, batch: _Batch, committed_us: int) -> None:
        sinks = np.array([committed_us - batch.results_us])
        self.histograms["sinks"].add(sinks, weight=int(batch.due_us.size))
        self.histograms["freshness"].add(committed_us - batch.due_us)

    def live(self) -> dict[str, Any]:
        """The figures so far for a live display: ``queueing`` (max speed: the stages measure the queue),
        ``speed``, and per stage of ``LIVE_STAGES`` its label and ``summary_ms`` (percentiles from the
        histogram's buckets, so the cost does not grow with the events counted)."""
        with self._lock:
            speed = None if self.schedule is None else self.schedule.speed
            return {
                "queueing": self.schedule is not None and speed is None,
                "speed": speed,
                "stages": {
                    name: {"label": STAGES[name], **self.histograms[name].summary_ms()}
                    for name in LIVE_STAGES
                },
            }

    def to_dict(self) -> dict[str, Any]:
        """``metrics/latency.json``: the schedule, whether the figures are queueing, every histogram."""
        with self._lock:
            schedule = self.schedule
            return {
                "relative_error": RELATIVE_ERROR,
                "speed": None if schedule is None else schedule.speed,
                "queueing": schedule is not None and schedule.speed is None,
                "schedule": None if schedule is None else {"event_us": schedule.event_us,
                                                           "wall_us": schedule.wall_us},
                "unmeasured_batches": len(self._early) + len(self._uncommitted),
                "stages": {name: h.to_dict() for name, h in self.histograms.items()},
            }


def latency_summary(data: dict[str, Any] | None) -> dict[str, Any]:
    """The summary's latency section from ``metrics/latency.json`` data (None: an older run without one).

    ``stages``: percentiles (ms) per stage; ``headline``: the paced run's figures (empty at max speed,
    where ``queueing`` is true and the stages measure the queue)."""
    if data is None:
        return {"measured": False, "queueing": False, "stages": {}, "headline": {}}
    stages = {
        name: LogHistogram.from_dict(data["stages"][name]).summary_ms()
        for name in STAGES
        if name in data["stages"]
    }
    queueing = bool(data["queueing"])
    headline = {} if queueing else {
        f"{name} {pct} ms": stages[name][pct] for name, pct in HEADLINE if name in stages
    }
    return {
        "measured": True,
        "queueing": queueing,
        "relative_error": data["relative_error"],
        "stages": stages,
        "headline": headline,
    }
