"""Replay speed, the pacing clock, the schedule it keeps and the lag-behind-schedule statistics.

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
from core.histogram import LogHistogram

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


@dataclass(frozen=True)
class LagSummary:
    """How far behind schedule the replay handed events to the target."""

    p50_ms: float
    p99_ms: float
    max_ms: float
    events: int

    @classmethod
    def of(cls, lag: LogHistogram) -> LagSummary:
        """p50, p99 and max of the lags in ``lag`` (zeros when nothing was sent)."""
        summary = lag.summary_ms()
        return cls(
            p50_ms=summary["p50"] or 0.0,
            p99_ms=summary["p99"] or 0.0,
            max_ms=summary["max"] or 0.0,
            events=lag.count,
        )


@dataclass(frozen=True)
class Schedule:
    """When the replay meant to send each event: the anchor event time is due at the anchor wall time, and
    later events ``(ts - event_us) / speed`` after it (at ``max`` speed everything is due at the anchor).

    Latency measured from ``due_wall_us`` cannot be hidden by a replay that falls behind its schedule.
    """

    event_us: int
    wall_us: int
    """Wall-clock µs since the Unix epoch at which the replay sent its first events."""
    speed: float | None

    def due_wall_us(self, ts_us: np.ndarray) -> np.ndarray:
        """The scheduled wall time (µs) of events at exchange times ``ts_us``."""
        ts = np.asarray(ts_us, dtype=np.int64)
        if self.speed is None:
            return np.full(ts.shape, self.wall_us, dtype=np.int64)
        return self.wall_us + ((ts - self.event_us) / self.speed).astype(np.int64)


class Pacer:
    """Decides how many of the next events are due and waits for the next one.

    ``speed=None`` is ``max``: everything is due at once and no lag is measured.
    """

    MAX_SLEEP_US = 50_000  # wake up regularly so the progress display and Ctrl-C stay responsive

    def __init__(self, speed: float | None, clock: Clock | None = None) -> None:
        self.speed = speed
        self.clock = clock or WallClock()
        self.lag = LogHistogram()
        self._t0_event: int | None = None
        self._t0_wall = 0
        self.schedule: Schedule | None = None
        """The anchor, once the first events were due."""

    def start(self, first_event_us: int) -> None:
        """Anchor the schedule: the event at ``first_event_us`` is due now."""
        self._t0_event = first_event_us
        self._t0_wall = self.clock.monotonic_us()
        self.schedule = Schedule(event_us=first_event_us, wall_us=self.clock.wall_us(), speed=self.speed)

    def due_count(self, sched_us: np.ndarray, offset: int) -> int:
        """How many of ``sched_us[offset:]`` (non-decreasing) are due now; sleeps when none is."""
        if self._t0_event is None:
            self.start(int(sched_us[offset]))
        assert self._t0_event is not None
        if self.speed is None:
            return len(sched_us) - offset
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
        # an event sent early is not late: its lag is 0
        self.lag.add(np.maximum(elapsed - due, 0).astype(np.int64))
