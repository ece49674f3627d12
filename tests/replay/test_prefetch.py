"""``replay.engine.prefetch``: its producer thread never outlives a consumer that stopped early."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pyarrow as pa
import pytest

from replay.engine import prefetch

CHUNK = pa.table({"x": [1, 2, 3]})


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "replay-prefetch" and t.is_alive()]


def test_producer_ends_when_the_consumer_stops_with_the_queue_full() -> None:
    exhausted = threading.Event()

    def chunks() -> Iterator[pa.Table]:
        yield CHUNK
        yield CHUNK
        exhausted.set()  # the producer's next step is handing over the end marker, into a full queue

    before = _prefetch_threads()
    consumer = prefetch(chunks(), depth=1)
    assert next(consumer) is CHUNK
    assert exhausted.wait(5)
    consumer.close()
    assert _prefetch_threads() == before


def test_producer_error_is_raised_in_the_consumer_and_the_thread_ends() -> None:
    def chunks() -> Iterator[pa.Table]:
        yield CHUNK
        raise OSError("disk gone")

    before = _prefetch_threads()
    with pytest.raises(OSError, match="disk gone"):
        list(prefetch(chunks(), depth=1))
    assert _prefetch_threads() == before


def test_producer_ends_when_the_consumer_stops_before_an_error_is_handed_over() -> None:
    failing = threading.Event()

    def chunks() -> Iterator[pa.Table]:
        yield CHUNK
        yield CHUNK
        failing.set()
        raise OSError("disk gone")

    before = _prefetch_threads()
    consumer = prefetch(chunks(), depth=1)
    assert next(consumer) is CHUNK
    assert failing.wait(5)
    consumer.close()
    assert _prefetch_threads() == before
