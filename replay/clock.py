"""Replay speed, the pacing clock and the lag-behind-schedule statistics.

At speed ``S`` an event whose schedule time is ``t`` (its exchange time, plus any injected delay) is due
when the wall time since the start reaches ``(t - t0) / S``. The wall clock only paces and stamps
``ts_sent``; event time always comes from the tape.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from core.errors import ReplayError

_SPEED = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*x?\s*$", re.IGNORECASE)


def parse_speed(text: str | float | None) -> float | None:
    """``"10x"`` -> 10.0, ``"max"`` (or ``None``) -> ``None`` meaning as fast as the target takes."""
    if text is None:
        return None
    if isinstance(text, int | float):
        speed = float(text)
    elif text.strip().lower() == "max":
        return None
    else:
        match = _SPEED.match(text)
        if match is None:
            raise ReplayError(f"speed {text!r} is not understood; use e.g. 1x, 10x, 60x or max")
        speed = float(match.group(1))
    if speed <= 0:
        raise ReplayError(f"speed must be positive, got {text!r}")
    return speed


class Clock(Protocol):
    """What the pacer needs from time: a monotonic reading, a wall-clock stamp, and sleeping."""

    def monotonic_us(self) -> int:
        """Microseconds on a monotonic clock (only differences matter)."""

    def wall_us(self) -> int:
        """Microseconds since the Unix epoch (for ``ts_sent``)."""

    def sleep_us(self, us: int) -> None:
        """Block for about ``us`` microseconds."""


class WallClock:
    """The real clock."""

    def monotonic_us(self) -> int:
        return time.perf_counter_ns() // 1_000

    def wall_us(self) -> int:
        return time.time_ns() // 1_000

    def sleep_us(self, us: int) -> None:
        if us > 0:
            time.sleep(us / 1e6)


class LagStats:
    """Lag of each event behind its due time, in a fixed-resolution histogram (exact maximum)."""

    RESOLUTION_US = 50
    BINS = 1_200_000  # 60 s at 50 µs; anything later lands in the last bin (the max stays exact)

    def __init__(self) -> None:
        self._hist = np.zeros(self.BINS, dtype=np.int64)
        self.count = 0
        self.max_us = 0

    def add(self, lag_us: np.ndarray) -> None:
        """Record the lags (µs, negative means early and counts as 0) of a group of events."""
        if lag_us.size == 0:
            return
        lag = np.maximum(lag_us, 0)
        self.max_us = max(self.max_us, int(lag.max()))
        bins = np.minimum(lag // self.RESOLUTION_US, self.BINS - 1)
        self._hist += np.bincount(bins, minlength=self.BINS)
        self.count += int(lag.size)

    def percentile_us(self, q: float) -> float:
        """The ``q``-th percentile (0-100) lag, to the histogram's resolution."""
        if self.count == 0:
            return 0.0
        rank = max(1, int(np.ceil(q / 100 * self.count)))
        index = int(np.searchsorted(np.cumsum(self._hist), rank))
        return float(min(index * self.RESOLUTION_US, self.max_us))

    def summary(self) -> LagSummary:
        """p50, p99 and max in milliseconds."""
        return LagSummary(
            p50_ms=self.percentile_us(50) / 1e3,
            p99_ms=self.percentile_us(99) / 1e3,
            max_ms=self.max_us / 1e3,
            events=self.count,
        )


@dataclass(frozen=True)
class LagSummary:
    """How far behind schedule the replay handed events to the target."""

    p50_ms: float
    p99_ms: float
    max_ms: float
    events: int


class Pacer:
    """Decides how many of the next events are due and waits for the next one.

    ``speed=None`` is ``max``: everything is due at once and no lag is measured.
    """

    MAX_SLEEP_US = 50_000  # wake up regularly so the progress display and Ctrl-C stay responsive

    def __init__(self, speed: float | None, clock: Clock | None = None) -> None:
        self.speed = speed
        self.clock = clock or WallClock()
        self.lag = LagStats()
        self._t0_event: int | None = None
        self._t0_wall = 0

    def start(self, first_event_us: int) -> None:
        """Anchor the schedule: the event at ``first_event_us`` is due now."""
        self._t0_event = first_event_us
        self._t0_wall = self.clock.monotonic_us()

    def due_count(self, sched_us: np.ndarray, offset: int) -> int:
        """How many of ``sched_us[offset:]`` (non-decreasing) are due now; sleeps when none is."""
        if self.speed is None:
            return len(sched_us) - offset
        if self._t0_event is None:
            self.start(int(sched_us[offset]))
        assert self._t0_event is not None
        elapsed = self.clock.monotonic_us() - self._t0_wall
        horizon = self._t0_event + int(elapsed * self.speed)
        end = int(np.searchsorted(sched_us, horizon, side="right"))
        if end > offset:
            return end - offset
        wait = (int(sched_us[offset]) - self._t0_event) / self.speed - elapsed
        self.clock.sleep_us(min(max(int(wait), 1), self.MAX_SLEEP_US))
        return 0

    def record_sent(self, sched_us: np.ndarray) -> None:
        """Record the lag of events just handed to the target."""
        if self.speed is None or self._t0_event is None:
            return
        elapsed = self.clock.monotonic_us() - self._t0_wall
        due = (sched_us - self._t0_event) / self.speed
        self.lag.add((elapsed - due).astype(np.int64))
