"""``LogHistogram``: a mergeable, log-bucketed histogram of non-negative durations, filled with vectorised
NumPy and no per-value Python.

Every value is counted (no sampling): value ``v`` µs lands in bucket ``floor(log(v + 1) / log(1 + 2e))``
where ``e = RELATIVE_ERROR``; a percentile is read as its bucket's geometric middle, clamped to the exact
minimum and maximum, so a reported percentile is within ``RELATIVE_ERROR`` (0.5%) of a value of the
population at that rank (plus 1 µs at the very bottom). Count, minimum and maximum are exact. Values
below zero (clock skew between two hosts' stamps) count as 0 and are counted apart in ``negatives``.

Histograms add (``merge``): a run builds one per micro-batch's worth of values into the same object, and
two runs' histograms combine without their values. ``to_dict`` keeps only the occupied buckets.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np

RELATIVE_ERROR: Final = 0.005
"""Upper bound of a percentile's relative error (against a value of the population at its rank)."""
_LOG_BASE: Final = math.log1p(2 * RELATIVE_ERROR)
BUCKETS: Final = int(math.log1p(1e13) / _LOG_BASE) + 2
"""Enough buckets for 10^13 µs (about 115 days); larger values land in the last one (max stays exact)."""
PERCENTILES: Final = (50.0, 90.0, 99.0, 99.9)


class LogHistogram:
    """Counts of durations in µs (see the module docstring for the buckets and the error bound)."""

    def __init__(self) -> None:
        self.counts = np.zeros(BUCKETS, dtype=np.int64)
        self.count = 0
        self.negatives = 0
        self.min_us: int | None = None
        self.max_us: int | None = None

    @classmethod
    def of(cls, values_us: np.ndarray) -> LogHistogram:
        """A histogram of ``values_us``."""
        histogram = cls()
        histogram.add(values_us)
        return histogram

    def add(self, values_us: np.ndarray, weight: int = 1) -> None:
        """Count every value of ``values_us`` (integers, µs) ``weight`` times each."""
        values = np.asarray(values_us, dtype=np.int64).ravel()
        if values.size == 0 or weight <= 0:
            return
        negative = values < 0
        self.negatives += int(negative.sum()) * weight
        values = np.where(negative, 0, values)
        low, high = int(values.min()), int(values.max())
        self.min_us = low if self.min_us is None else min(self.min_us, low)
        self.max_us = high if self.max_us is None else max(self.max_us, high)
        index = np.minimum((np.log1p(values.astype(np.float64)) / _LOG_BASE).astype(np.int64), BUCKETS - 1)
        self.counts += np.bincount(index, minlength=BUCKETS) * weight
        self.count += int(values.size) * weight

    def merge(self, other: LogHistogram) -> None:
        """Add ``other``'s counts to this one."""
        if other.count == 0:
            return
        self.counts += other.counts
        self.count += other.count
        self.negatives += other.negatives
        assert other.min_us is not None and other.max_us is not None
        self.min_us = other.min_us if self.min_us is None else min(self.min_us, other.min_us)
        self.max_us = other.max_us if self.max_us is None else max(self.max_us, other.max_us)

    def percentile_us(self, q: float) -> float | None:
        """The ``q``-th percentile (0-100) in µs, None when empty (rank ``ceil(q/100 * count)``)."""
        if self.count == 0:
            return None
        assert self.min_us is not None and self.max_us is not None
        rank = max(1, math.ceil(q / 100 * self.count))
        bucket = int(np.searchsorted(np.cumsum(self.counts), rank))
        middle = math.exp((bucket + 0.5) * _LOG_BASE) - 1
        return float(min(max(middle, self.min_us), self.max_us))

    def summary_ms(self) -> dict[str, float | None]:
        """p50, p90, p99, p99.9 and max in ms, and the count (None percentiles when empty)."""
        out: dict[str, float | None] = {}
        for q in PERCENTILES:
            value = self.percentile_us(q)
            out[f"p{q:g}"] = None if value is None else value / 1e3
        out["max"] = None if self.max_us is None else self.max_us / 1e3
        out["count"] = float(self.count)
        return out

    def cdf_ms(self) -> tuple[list[float], list[float]]:
        """The occupied buckets' upper edges (ms) and the cumulative share of values up to each."""
        occupied = np.flatnonzero(self.counts)
        if occupied.size == 0:
            return [], []
        edges = np.expm1((occupied + 1) * _LOG_BASE) / 1e3
        shares = np.cumsum(self.counts[occupied]) / self.count
        return edges.tolist(), shares.tolist()

    def to_dict(self) -> dict[str, Any]:
        """JSON data: the occupied buckets only."""
        occupied = np.flatnonzero(self.counts)
        return {
            "relative_error": RELATIVE_ERROR,
            "count": self.count,
            "negatives": self.negatives,
            "min_us": self.min_us,
            "max_us": self.max_us,
            "buckets": occupied.tolist(),
            "counts": self.counts[occupied].tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogHistogram:
        """What ``to_dict`` wrote."""
        histogram = cls()
        buckets = np.asarray(data["buckets"], dtype=np.int64)
        histogram.counts[buckets] = np.asarray(data["counts"], dtype=np.int64)
        histogram.count = int(data["count"])
        histogram.negatives = int(data["negatives"])
        histogram.min_us, histogram.max_us = data["min_us"], data["max_us"]
        return histogram
