"""Which allocator Arrow's buffers come from in a process that mostly moves Arrow data (the replay).

Arrow's default pool is mimalloc. On this project's machines (transparent huge pages ``always``) a
replay that allocates and frees a few hundred MB of short-lived buffers spends most of its CPU in the
kernel with it: the 1-hour whale-day tape (384,566 events) into Kinesis took 4.0-4.7 s of replay CPU,
most of it system time, against 1.1-1.2 s with the C library's allocator
(``benchmarks/bench_replay.py kinesis --allocator mimalloc`` against ``--allocator system``). Only
where the buffers' memory comes from changes: same arrays, same bytes.
"""

from __future__ import annotations

import pyarrow as pa


def use_system_allocator() -> None:
    """Make the C library's allocator Arrow's default pool in this process (call before the work;
    buffers allocated earlier stay in the pool they came from)."""
    pa.set_memory_pool(pa.system_memory_pool())
