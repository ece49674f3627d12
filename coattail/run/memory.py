"""Peak memory of every process of a run: the run's own process, the replay child, the emulator, the Spark
JVM and its Python workers.

A background thread samples the resident set size (RSS) of each process tree it watches every
``interval_s`` and sums it at each sample, so the peak total is the most the run held at one moment (not
the sum of each process's own peak, which come at different times). Each process falls in a group, by
where it sits in the tree: the root itself (``cli``), a root named with ``watch`` (``emulator``: a
stack that was already up is no child of the run), ``java`` (``spark_jvm``), anything under a JVM
(``spark_python``: its Python daemon and workers), other children of the root (``children``: the replay
child, multiprocessing's resource tracker). Processes shorter-lived than the interval may be missed;
Spark's Python workers live as long as the session.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import psutil

MIB = 2**20

GROUPS = ("cli", "children", "emulator", "spark_jvm", "spark_python")
"""Every group a process can fall in, in report order."""


@dataclass
class _Peaks:
    samples: int = 0
    total: int = 0
    total_at_s: float = 0.0
    total_groups: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)


class MemorySampler:
    """Samples the RSS of ``root``'s process tree (and of any tree named with ``watch``) in a thread.

    Use as a context manager, or ``start`` / ``stop``; ``summary`` and ``series`` read what it saw."""

    def __init__(self, root: int, interval_s: float = 0.5) -> None:
        self._root = root
        self._interval_s = interval_s
        self._named: dict[int, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="coattail-memory", daemon=True)
        self._started = time.monotonic()
        self._peaks = _Peaks()
        self._rows: list[tuple[int, str, int]] = []

    def watch(self, pid: int, group: str) -> None:
        """Count ``pid`` and its descendants in ``group`` from the next sample on (a process that is not
        the root's child, such as an emulator a stack started earlier)."""
        with self._lock:
            self._named[pid] = group

    def start(self) -> MemorySampler:
        """Take a first sample, then keep sampling in the background."""
        self._started = time.monotonic()
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Take a last sample and stop the thread (once: later calls do nothing)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.sample()

    def __enter__(self) -> MemorySampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.sample()

    def sample(self) -> dict[str, int]:
        """RSS by group now (bytes), recorded in the peaks and the series."""
        with self._lock:
            named = dict(self._named)
        by_group: dict[str, int] = {}
        for _, group, rss in _tree_rss(self._root, named):
            by_group[group] = by_group.get(group, 0) + rss
        at = round(time.monotonic() - self._started, 3)
        now_us = time.time_ns() // 1_000
        total = sum(by_group.values())
        with self._lock:
            peaks = self._peaks
            peaks.samples += 1
            if total > peaks.total:
                peaks.total, peaks.total_at_s, peaks.total_groups = total, at, dict(by_group)
            for group, rss in by_group.items():
                peaks.groups[group] = max(peaks.groups.get(group, 0), rss)
            self._rows += [(now_us, group, rss) for group, rss in by_group.items()]
        return by_group

    def summary(self) -> dict[str, Any]:
        """The peaks in MiB: of the total over all processes (and how it split at that moment), and of
        each group on its own, with the sampling interval and count."""
        with self._lock:
            peaks = self._peaks
            return {
                "peak_total_mib": _mib(peaks.total),
                "peak_total_at_s": peaks.total_at_s,
                "at_peak_total_mib": {
                    g: _mib(peaks.total_groups[g]) for g in GROUPS if g in peaks.total_groups
                },
                "peak_by_group_mib": {g: _mib(peaks.groups[g]) for g in GROUPS if g in peaks.groups},
                "interval_s": self._interval_s,
                "samples": peaks.samples,
            }

    def series(self) -> pl.DataFrame:
        """Every sample: wall-clock time (µs since the epoch, as the run's other metrics), group, RSS in
        bytes."""
        with self._lock:
            rows = list(self._rows)
        return pl.DataFrame(
            {"t_us": [r[0] for r in rows], "group": [r[1] for r in rows], "rss": [r[2] for r in rows]},
            schema={"t_us": pl.Int64, "group": pl.Utf8, "rss": pl.Int64},
        )

    def write(self, path: Path) -> None:
        """The series as Parquet."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.series().write_parquet(path)


def _mib(n: int) -> float:
    return round(n / MIB, 1)


def _tree_rss(root: int, named: dict[int, str]) -> Iterator[tuple[int, str, int]]:
    """(pid, group, RSS) of every live process of ``process_tree``; one that exits meanwhile is left out."""
    for process, group in process_tree(root, named):
        try:
            rss = process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        yield process.pid, group, rss


def process_tree(root: int, named: dict[int, str]) -> Iterator[tuple[psutil.Process, str]]:
    """Every live process under ``root`` and under each ``named`` root, each once, with its group
    (``GROUPS``: the module docstring says which process falls in which).

    One pass over the machine's processes finds the parents; the trees are then walked from the top so
    that a child takes its group from its parent. A process that exits meanwhile is left out."""
    children: dict[int, list[psutil.Process]] = {}
    for process in psutil.process_iter(["ppid"]):
        children.setdefault(process.info["ppid"], []).append(process)
    seen: set[int] = set()
    stack: list[tuple[int, str]] = [(pid, group) for pid, group in named.items()] + [(root, "cli")]
    while stack:
        pid, group = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            process = psutil.Process(pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        yield process, group
        for child in children.get(pid, []):
            stack.append((child.pid, named.get(child.pid) or _child_group(group, child)))


def _child_group(parent: str, child: psutil.Process) -> str:
    """The group of ``child`` of a process in group ``parent``."""
    if parent in ("emulator", "spark_python"):
        return parent
    if parent == "spark_jvm":
        return "spark_python"
    try:
        name = child.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        name = ""
    return "spark_jvm" if name.startswith("java") else "children"
