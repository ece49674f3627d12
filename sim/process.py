"""Vectorised random building blocks of the synthetic market (no Python loop per event)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def cox_times(rng: np.random.Generator, rates: F64, t0: int, bin_us: int) -> I64:
    """Arrival times of a Poisson process whose rate is constant within each bin (events per bin).

    Bin ``k`` covers ``[t0 + k * bin_us, t0 + (k + 1) * bin_us)``; the result is sorted.
    """
    counts = rng.poisson(np.maximum(rates, 0.0))
    starts = t0 + np.arange(len(rates), dtype=np.int64) * bin_us
    offsets = rng.integers(0, bin_us, size=int(counts.sum()), dtype=np.int64)
    times = np.repeat(starts, counts) + offsets
    times.sort(kind="stable")  # a radix sort for int64: linear time
    return times


def hawkes_offspring(rng: np.random.Generator, parents: I64, branching: float, decay_us: float) -> I64:
    """All descendants of ``parents`` in a Hawkes process with an exponential kernel (cluster form),
    unsorted.

    Each event begets Poisson(``branching``) children at exponential delays of mean ``decay_us``;
    generations are drawn one at a time (each is an array), so the work is vectorised.
    """
    out: list[I64] = []
    gen = parents
    while gen.size:
        counts = rng.poisson(branching, size=gen.size)
        gen = np.repeat(gen, counts) + rng.exponential(decay_us, size=int(counts.sum())).astype(np.int64)
        out.append(gen)
    if not out:
        return np.empty(0, dtype=np.int64)
    kids: I64 = np.concatenate(out)
    return kids


def fill_gaps(times: I64, previous: int | None, max_gap_us: int) -> I64:
    """Insert evenly spaced times so that no two consecutive times (from ``previous``) are farther apart
    than ``max_gap_us``; ``times`` must be sorted."""
    if times.size == 0:
        return times
    head = times[:1] if previous is None else np.array([previous], dtype=np.int64)
    full = np.concatenate([head, times]) if previous is not None else times
    gaps = np.diff(full)
    need = np.where(gaps > max_gap_us, -(-gaps // max_gap_us) - 1, 0)
    if not need.any():
        return times
    total = int(need.sum())
    owner = np.repeat(np.arange(gaps.size), need)
    # rank of each inserted time within its gap: 1..need
    rank = np.arange(total) - np.repeat(np.cumsum(need) - need, need) + 1
    step = gaps[owner] // (need[owner] + 1)
    extra = full[owner] + rank * step
    merged = np.concatenate([times, extra])
    merged.sort(kind="stable")
    return merged


def ou_log_factor(rng: np.random.Generator, n: int, state: float, sigma: float, reversion: float) -> F64:
    """``n`` steps of a mean-reverting (Ornstein-Uhlenbeck) log factor starting after ``state``.

    Stationary standard deviation ``sigma``; ``reversion`` is the fraction pulled back per step.
    """
    a = 1.0 - reversion
    noise = rng.normal(0.0, sigma * np.sqrt(1.0 - a * a), size=n)
    # x_k = a^k x_0 + sum_j a^(k-j) e_j, computed as a scaled cumulative sum (n is small: minutes)
    powers = a ** np.arange(1, n + 1)
    out: F64 = powers * (state + np.cumsum(noise / powers))
    return out
