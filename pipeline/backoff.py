"""Exponential backoff with full jitter: the one retry-delay rule of the Kinesis writer and the connectors."""

from __future__ import annotations

import random


def full_jitter_s(attempt: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): uniform under a doubling ceiling.

    Uniform in ``[0, min(max_s, base_s * 2**(attempt-1))]`` (AWS' "full jitter"), so clients that
    failed together do not retry together.
    """
    ceiling = min(max_s, base_s * (2 ** max(attempt - 1, 0)))
    return rng.uniform(0, ceiling)


class Backoff:
    """Consecutive failures and the delay before the next attempt; ``reset`` after a success."""

    def __init__(self, base_s: float, max_s: float, rng: random.Random | None = None) -> None:
        if base_s <= 0 or max_s < base_s:
            raise ValueError(f"backoff needs 0 < base ({base_s}) <= max ({max_s})")
        self.base_s = base_s
        self.max_s = max_s
        self.rng = rng or random.Random()
        self.failures = 0

    def next_delay_s(self) -> float:
        """Count one more failure; the seconds to wait before trying again."""
        self.failures += 1
        return full_jitter_s(self.failures, self.base_s, self.max_s, self.rng)

    def reset(self) -> None:
        """A success: the next failure starts from the base delay again."""
        self.failures = 0
