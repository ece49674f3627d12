"""The run's memory sampler against real processes that hold a known amount of memory."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

from coattail.run.memory import MIB, MemorySampler

HOLD_MIB = 200

# touches every page (b"\x01" * n writes them), says so, then waits to be killed
_HOLDER = f"""
import sys, time
held = b"\\x01" * ({HOLD_MIB} * {MIB})
print("held", flush=True)
time.sleep(120)
"""


@contextmanager
def _holder() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_childs_memory_is_in_the_total_and_in_its_group() -> None:
    sampler = MemorySampler(psutil.Process().pid, interval_s=0.05)
    before = sampler.sample()
    with sampler, _holder():
        time.sleep(0.3)
    summary = sampler.summary()
    assert summary["peak_by_group_mib"]["children"] >= HOLD_MIB + before.get("children", 0) / MIB
    # the peak total is one moment's sum: the test process (and whatever ran under it) plus the child
    assert summary["peak_total_mib"] >= sum(before.values()) / MIB + HOLD_MIB - 5
    assert summary["at_peak_total_mib"]["children"] >= HOLD_MIB
    assert summary["samples"] >= 3
    series = sampler.series()
    # after the child exited the last sample no longer holds its memory (the test process's other
    # children, such as a session's emulator, were there before and still are)
    last = series.filter(series["t_us"] == series["t_us"].max())
    children_at_end = last.filter(last["group"] == "children")["rss"].sum()
    assert children_at_end < before.get("children", 0) + HOLD_MIB * MIB // 2


def test_a_watched_process_is_counted_in_its_group_once() -> None:
    others = MemorySampler(psutil.Process().pid).sample().get("children", 0)  # a session's emulator...
    with _holder() as proc:
        # a process of another tree (a stack started earlier): counted when watched, whatever the root
        outside = MemorySampler(2**22 + 1)  # above Linux's pid_max: no such process, an empty tree
        assert outside.sample() == {}
        outside.watch(proc.pid, "emulator")
        alone = outside.sample()
        # under the root too (a stack this run started): in the watched group, not also in "children"
        inside = MemorySampler(psutil.Process().pid)
        inside.watch(proc.pid, "emulator")
        both = inside.sample()
    assert set(alone) == {"emulator"} and alone["emulator"] >= HOLD_MIB * MIB
    assert both["emulator"] >= HOLD_MIB * MIB
    assert both.get("children", 0) < others + HOLD_MIB * MIB // 2


def test_stop_twice_takes_one_last_sample() -> None:
    sampler = MemorySampler(psutil.Process().pid, interval_s=10).start()
    sampler.stop()
    samples = sampler.summary()["samples"]
    sampler.stop()
    assert sampler.summary()["samples"] == samples == 2
