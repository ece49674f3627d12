"""Per-key event-time machinery shared by the windowed detectors (MOD-002, MOD-003).

Everything here works on ONE key's events (one exchange and symbol) in arrival order, one chunk at a
time, plus a small state carried between chunks; docs/DETECTORS.md ("Common ground") is the contract:

- ``running_max`` and ``closing_bound``: the key's clock and how far it has closed windows (which events
  are late comes from the engine's sequencer, so that every module agrees on it);
- ``top_k`` and ``fold_sum``: the few order-sensitive reductions, written so that the result does not
  depend on where the input was cut into chunks (streaming micro-batches = one batch over the whole key).

Nothing here knows Spark or pandas; ``pipeline.detectors.windowed`` feeds it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
BoolArr = npt.NDArray[np.bool_]

NO_TIME: Final = -(2**62)
"""Stands for "no earlier event": far below any real time, far enough from int64's edge to subtract."""

MAX_EVENT_IDS: Final = 50
"""``event_ids`` of an alert holds at most this many ids (docs/DETECTORS.md, alert record)."""


def running_max(ts: I64, max_ts: int) -> I64:
    """Per row of an arrival-ordered chunk: the key's max ``ts_event`` once that row has arrived.

    ``max_ts`` is the max before the chunk (``NO_TIME`` for a fresh key); the result never decreases.
    """
    if len(ts) == 0:
        return np.empty(0, dtype=np.int64)
    return np.maximum.accumulate(np.maximum(ts, max_ts))


def window_starts(ts: I64, width_us: int) -> I64:
    """Epoch-aligned window start of each time: ``floor(ts / W) * W``."""
    return (ts // width_us) * width_us


def by_window(wins: I64) -> Iterator[tuple[int, npt.NDArray[np.intp]]]:
    """``(window start, row positions)`` per distinct window of ``wins``, in order of start; the
    positions of one window in their original (arrival) order."""
    order = np.argsort(wins, kind="stable")
    for part in np.split(order, np.flatnonzero(np.diff(wins[order])) + 1):
        if len(part):
            yield int(wins[part[0]]), part


def closing_bound(max_ts: int, delay_us: int, width_us: int) -> int:
    """Windows starting before this bound are closed: ``[s, s+W)`` closes once ``max_ts - delay >= s+W``."""
    if max_ts == NO_TIME:
        return NO_TIME
    return ((max_ts - delay_us) // width_us) * width_us


def closing_rows(running_max: I64, window_ends: I64, delay_us: int) -> npt.NDArray[np.intp]:
    """For each window end, the chunk row whose arrival closed it (``len`` when none in this chunk)."""
    return np.searchsorted(running_max, window_ends + delay_us, side="left")


def fold_sum(start: float, values: F64) -> float:
    """``start + v0 + v1 + ...`` added strictly left to right.

    ``np.sum`` adds pairwise, so its result would depend on how a window's values were split across
    micro-batches; a sequential fold gives the same bits however the input is chunked.
    """
    if len(values) == 0:
        return start
    acc = np.empty(len(values) + 1, dtype=np.float64)
    acc[0] = start
    acc[1:] = values
    return float(np.cumsum(acc)[-1])


TopEntry = tuple[float, int, str]
"""(rank value, arrival index, event id)."""


def top_k(entries: list[TopEntry], k: int = MAX_EVENT_IDS) -> list[TopEntry]:
    """The ``k`` entries with the largest value (ties: earlier arrival first), listed in arrival order."""
    best = sorted(entries, key=lambda e: (-e[0], e[1]))[:k]
    return sorted(best, key=lambda e: e[1])


def top_k_by_group(
    groups: I64, values: F64, arrivals: I64, k: int = MAX_EVENT_IDS
) -> dict[int, list[tuple[float, int, int]]]:
    """Per group, its ``k`` largest rows (value descending, earlier arrival first), vectorised.

    Returns ``{group: [(value, arrival, row index), ...]}``; the caller names the rows (building an
    event id string for every row of a day would cost more than the whole reduction).
    """
    if len(groups) == 0:
        return {}
    order = np.lexsort((arrivals, -values, groups))
    g = groups[order]
    first = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    rank = np.arange(len(g)) - np.repeat(first, np.diff(np.r_[first, len(g)]))
    out: dict[int, list[tuple[float, int, int]]] = {}
    for i in order[rank < k].tolist():
        out.setdefault(int(groups[i]), []).append((float(values[i]), int(arrivals[i]), i))
    return out


def json_entries(entries: list[TopEntry]) -> list[list[Any]]:
    """Top-k entries as JSON lists (floats keep every bit through ``json``)."""
    return [[v, a, i] for v, a, i in entries]


def entries_from_json(data: list[list[Any]]) -> list[TopEntry]:
    """Inverse of ``json_entries``."""
    return [(float(v), int(a), str(i)) for v, a, i in data]


def merge_top(
    stored: list[list[Any]], found: list[tuple[float, int, int]], name: Callable[[int], str]
) -> list[list[Any]]:
    """A window's stored top-k entries (JSON) merged with a chunk's ``top_k_by_group`` rows, which
    ``name`` turns from row index into event id; the result as JSON again."""
    return json_entries(top_k(entries_from_json(stored) + [(v, a, name(i)) for v, a, i in found]))
