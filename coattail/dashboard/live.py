"""The state of a run in progress, as ``coattail run --live`` reports it to its dashboard."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coattail.run.progress import RunObserver
from pipeline.config import Config

RATE_WINDOW_S = 2.0
"""The replay's events/s is measured over this much wall time (the rate as it changes, not the mean)."""


class LiveRun(RunObserver):
    """What the run has told so far; read by the dashboard's threads while the run's threads write."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()
        self._status: dict[str, Any] = {
            "run_id": None,
            "state": "starting",
            "sent": 0,
            "total": 0,
            "events_per_s": 0.0,
            "position_us": None,
            "start_us": None,
            "end_us": None,
            "records_in": 0,
            "batches": 0,
            "message": None,
            "latency": None,
        }
        self._config: Config | None = None
        self._run_path: Path | None = None

    def provisioned(self, run_id: str, run_path: Path, config: Config) -> None:
        """Remember the run's own resources: from now on its alerts table answers the API."""
        with self._lock:
            self._status["run_id"] = run_id
            self._config, self._run_path = config, run_path

    def replayed(
        self, sent: int, total: int, position_us: int, start_us: int, end_us: int, rate: float
    ) -> None:
        """The replay's progress in events and exchange time; ``rate`` (the mean so far) stands for the
        current rate until samples span a tenth of ``RATE_WINDOW_S``."""
        now = self._clock()
        with self._lock:
            self._samples.append((now, sent))
            while now - self._samples[0][0] > RATE_WINDOW_S:
                self._samples.popleft()
            first_t, first_sent = self._samples[0]
            if now - first_t >= RATE_WINDOW_S / 10:
                rate = (sent - first_sent) / (now - first_t)
            self._status.update(
                sent=sent, total=total, position_us=position_us, start_us=start_us, end_us=end_us,
                events_per_s=round(rate, 1),
            )  # fmt: skip

    def processed(self, records_in: int, batches: int) -> None:
        """The pipeline's progress."""
        with self._lock:
            self._status.update(records_in=records_in, batches=batches)

    def latency(self, figures: dict[str, Any]) -> None:
        """The pipeline's per-event latency so far (None until the first batch)."""
        with self._lock:
            self._status["latency"] = figures

    def stage(self, state: str, message: str | None = None) -> None:
        """The run's state."""
        with self._lock:
            self._status.update(state=state, message=message)

    def snapshot(self) -> dict[str, Any]:
        """The run's status as the harness route ``/harness/run`` returns it."""
        with self._lock:
            return dict(self._status)

    @property
    def config(self) -> Config | None:
        """The run's resolved config once its resources exist."""
        with self._lock:
            return self._config

    @property
    def run_path(self) -> Path | None:
        """The run directory once the run created it."""
        with self._lock:
            return self._run_path
