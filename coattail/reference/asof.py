"""The price as of a time, reference version (docs/DETECTORS.md, Common ground, "Price as of x"): one
instrument's events walked in arrival order, each rise of the clock remembered with the last counted
price before it."""

from __future__ import annotations

from bisect import bisect_right
from typing import Final

NOT_YET: Final = object()
"""``as_of``'s answer while the clock has not passed ``x``."""


class PriceSteps:
    """One instrument's clock rises; call ``arrive`` for every valid event in arrival order."""

    def __init__(self) -> None:
        self.clock: int | None = None
        self.last: float | None = None
        self.rises: list[int] = []
        self.prices: list[float | None] = []

    def arrive(self, ts: int, counted: bool, price: float | None) -> None:
        """One event: it may raise the clock (fixing every ``x`` below the new clock), then a counted
        trade becomes the last counted price."""
        if self.clock is None or ts > self.clock:
            self.rises.append(ts)
            self.prices.append(self.last)
            self.clock = ts
        if counted:
            self.last = price

    def as_of(self, x: int, asked_at: int, retention: int) -> float | object | None:
        """The price as of ``x`` asked at clock ``asked_at``: ``None`` when there is none (no counted trade
        before, or ``x`` older than ``retention`` before ``asked_at``), ``NOT_YET`` before the clock
        passed ``x``."""
        if x < asked_at - retention:
            return None
        i = bisect_right(self.rises, x)
        return self.prices[i] if i < len(self.rises) else NOT_YET
