"""``PriceAsOf``: an instrument's price as of a time ``x``, known once the instrument's clock is past ``x``.

docs/DETECTORS.md, "Price as of x": the price as of ``x`` is the price of the last-arrived counted trade
(valid, neither ``late`` nor ``duplicate``) of the instrument among those with ``ts_event <= x``,
evaluated once the instrument's clock (the largest ``ts_event`` of its valid events of either kind) is
**strictly greater** than ``x``, i.e. at the arrival of the first event that takes the clock past ``x``.
Every event before that one has ``ts_event <= x``, so the answer is simply the last counted trade that
arrived before it; a trade arriving later with ``ts_event <= x`` does not change an answer already known.

The facility keeps the clock's **steps**: each event that raises the clock from ``c`` to ``c'`` fixes the
answer for every ``x`` in ``[c, c')`` to the last counted price before that event. A query is a binary
search in the steps, which is what makes it the same however the input is cut into micro-batches.

History is bounded by ``retention_us``: a query names the clock it is asked at (``asked_at``: the clock
of the event on whose behalf it is asked, never the end of a chunk) and one with ``x < asked_at -
retention_us`` answers NaN, like one before the instrument's first trade. The answer is therefore a
function of the events, ``x`` and ``asked_at`` alone; steps no such query can reach are dropped.

MOD-008 (impact ``h`` seconds after a whale) and MOD-011 (forward returns) use it per instrument,
inside the instrument's own state, so streaming, the reprocessor and the reference agree by construction.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from core.errors import PipelineError
from pipeline.detectors.windows import F64, I64, NO_TIME, BoolArr

BEFORE: Final = -1
"""``resolve``'s row for a query whose answer was known before the chunk last fed."""
PENDING: Final = -2
"""``resolve``'s row for a query the clock has not passed yet (ask again after more input)."""


class PriceAsOf:
    """One instrument's clock steps; feed it the instrument's events chunk by chunk in arrival order.

    State (``to_state``) is JSON data: the clock, the last counted price and the steps as two lists.
    """

    def __init__(self, retention_us: int, state: dict[str, Any] | None = None) -> None:
        self.retention_us = retention_us
        state = state or {}
        self.clock = int(state.get("clock", NO_TIME))
        last = state.get("last_price")
        self.last_price = np.nan if last is None else float(last)
        self.step_clock: I64 = np.asarray(state.get("step_clock", []), dtype=np.int64)
        """The clock each step raised it to (strictly increasing)."""
        self.step_price: F64 = np.array(  # None (JSON for "no counted trade yet") becomes NaN
            [np.nan if p is None else p for p in state.get("step_price", [])], dtype=np.float64
        )
        """The last counted price before that step's event (NaN: no counted trade yet)."""
        self._chunk_start = len(self.step_clock)
        self._chunk_clock = self.clock
        self._step_row: npt.NDArray[np.intp] = np.empty(0, dtype=np.intp)

    def to_state(self) -> dict[str, Any]:
        """The state as JSON data (NaN prices are written as ``None``)."""
        return {
            "clock": self.clock,
            "last_price": None if np.isnan(self.last_price) else self.last_price,
            "step_clock": self.step_clock.tolist(),
            "step_price": [None if np.isnan(p) else float(p) for p in self.step_price],
        }

    def feed(self, ts: I64, counted: BoolArr, price: F64) -> None:
        """Add one chunk of the instrument's valid events in arrival order (``counted``: a counted trade;
        ``price`` is read at those rows only)."""
        # a query asked from now on has asked_at >= clock, so it never needs x < clock - retention:
        # steps whose whole range [previous clock, their clock) lies below that are dropped
        keep = int(np.searchsorted(self.step_clock, self.clock - self.retention_us, side="right"))
        self.step_clock, self.step_price = self.step_clock[keep:], self.step_price[keep:]
        self._chunk_start = len(self.step_clock)
        self._chunk_clock = self.clock
        n = len(ts)
        if n == 0:
            self._step_row = np.empty(0, dtype=np.intp)
            return
        running = np.maximum.accumulate(np.maximum(ts.astype(np.int64), self.clock))
        before = np.concatenate(([self.clock], running[:-1]))
        rows = np.flatnonzero(running > before)
        # the last counted price strictly before each row, seeded with the state's
        idx = np.where(counted, np.arange(n), -1)
        last_idx = np.maximum.accumulate(idx)
        prev_idx = np.concatenate(([-1], last_idx[:-1]))
        prices = np.asarray(price, dtype=np.float64)
        prev_price = np.where(prev_idx >= 0, prices[np.maximum(prev_idx, 0)], self.last_price)
        self.step_clock = np.concatenate((self.step_clock, running[rows]))
        self.step_price = np.concatenate((self.step_price, prev_price[rows]))
        self._step_row = rows
        self.clock = int(running[-1])
        if last_idx[-1] >= 0:
            self.last_price = float(prices[last_idx[-1]])

    def resolve(self, xs: I64, asked_at: I64 | int) -> tuple[F64, npt.NDArray[np.intp]]:
        """For each ``x``, asked at clock ``asked_at`` (at least the clock before the last chunk fed):
        its price as of ``x`` (NaN when none, or when ``x < asked_at - retention_us``) and the row of the
        last chunk fed whose event resolved it (``BEFORE`` when it was known earlier, ``PENDING`` when
        the clock is not past ``x`` yet; the price is NaN then)."""
        xs = np.asarray(xs, dtype=np.int64)
        asked = np.broadcast_to(np.asarray(asked_at, dtype=np.int64), xs.shape)
        if (asked < self._chunk_clock).any():
            raise PipelineError(
                "PriceAsOf.resolve: a query asked at a clock before the last chunk fed; ask each query "
                "before feeding the events that follow it"
            )
        step = np.searchsorted(self.step_clock, xs, side="right")
        found = step < len(self.step_clock)
        safe = np.minimum(step, max(len(self.step_clock) - 1, 0))
        too_old = xs < asked - self.retention_us
        known = found & ~too_old
        price = np.where(known, self.step_price[safe] if len(self.step_clock) else np.nan, np.nan)
        in_chunk = known & (step >= self._chunk_start)
        rows = np.full(len(xs), PENDING, dtype=np.intp)
        rows[found | too_old] = BEFORE
        if in_chunk.any():
            rows[in_chunk] = self._step_row[step[in_chunk] - self._chunk_start]
        return np.asarray(price, dtype=np.float64), rows
