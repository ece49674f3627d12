"""The replay's Arrow allocator switch."""

from __future__ import annotations

import pyarrow as pa

from core.arrow_memory import use_system_allocator


def test_new_buffers_come_from_the_system_pool() -> None:
    before = pa.default_memory_pool()
    try:
        use_system_allocator()
        allocated = pa.system_memory_pool().bytes_allocated()
        array = pa.array(range(100_000))
        assert pa.default_memory_pool().backend_name == "system"
        assert pa.system_memory_pool().bytes_allocated() > allocated
        assert array.sum().as_py() == sum(range(100_000))
    finally:
        pa.set_memory_pool(before)
