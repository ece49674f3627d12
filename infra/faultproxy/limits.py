"""Kinesis' per-shard quotas, enforced by the fault proxy.

Writes: 1,000 records and 1 MiB (data plus partition key) per shard per second; a PutRecords entry over
either is refused with ``ProvisionedThroughputExceededException`` in its result slot, as AWS does. Reads:
5 GetRecords calls and 2 MiB per shard per second; a call past either is refused whole. Seconds are
fixed one-second windows of the proxy's monotonic clock (AWS measures over a rolling second, which
never admits more). The peak a shard was *offered* (admitted or not) is kept: it says whether the
shard count holds the load.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from infra.faultproxy.spec import KinesisLimits


def hash_key(partition_key: str, explicit: str | None = None) -> int:
    """The 128-bit hash key Kinesis routes a record by: MD5 of the partition key, unless explicit."""
    if explicit:
        return int(explicit)
    return int.from_bytes(hashlib.md5(partition_key.encode()).digest(), "big")


@dataclass(frozen=True)
class ShardRange:
    """One open shard and the hash keys it takes."""

    shard_id: str
    start: int
    end: int


def shard_for(ranges: list[ShardRange], key: int) -> str:
    """The open shard whose hash key range holds ``key``."""
    for r in ranges:
        if r.start <= key <= r.end:
            return r.shard_id
    return ranges[-1].shard_id if ranges else "unknown"


@dataclass
class _Second:
    second: int = -1
    records: int = 0
    bytes: int = 0
    calls: int = 0


@dataclass
class Peak:
    """The most a shard was offered in one second."""

    records: int = 0
    bytes: int = 0
    read_calls: int = 0


@dataclass
class KinesisQuota:
    """Admits or refuses writes and reads per shard; thread-safe."""

    limits: KinesisLimits
    clock: Callable[[], float] = time.monotonic
    peaks: dict[str, Peak] = field(default_factory=lambda: defaultdict(Peak))
    refused_records: int = 0
    refused_reads: int = 0
    _writes: dict[str, _Second] = field(default_factory=lambda: defaultdict(_Second))
    _offered: dict[str, _Second] = field(default_factory=lambda: defaultdict(_Second))
    _reads: dict[str, _Second] = field(default_factory=lambda: defaultdict(_Second))
    _iterators: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _now(self) -> int:
        return int(self.clock())

    @staticmethod
    def _roll(window: _Second, now: int) -> _Second:
        if window.second != now:
            window.second, window.records, window.bytes, window.calls = now, 0, 0, 0
        return window

    def admit_write(self, shard: str, size: int) -> bool:
        """Whether one record of ``size`` bytes (data and key) fits in ``shard``'s current second."""
        with self._lock:
            now = self._now()
            offered = self._roll(self._offered[shard], now)
            offered.records += 1
            offered.bytes += size
            peak = self.peaks[shard]
            peak.records, peak.bytes = max(peak.records, offered.records), max(peak.bytes, offered.bytes)
            used = self._roll(self._writes[shard], now)
            if used.records + 1 > self.limits.write_records_per_s or (
                used.bytes + size > self.limits.write_bytes_per_s
            ):
                self.refused_records += 1
                return False
            used.records += 1
            used.bytes += size
            return True

    def remember_iterator(self, iterator: str | None, shard: str) -> None:
        """Note which shard an iterator reads (GetRecords names only the iterator)."""
        if iterator:
            with self._lock:
                self._iterators[iterator] = shard

    def shard_of(self, iterator: str) -> str | None:
        """The shard an iterator handed out earlier reads."""
        with self._lock:
            return self._iterators.get(iterator)

    def advance(self, used: str, following: str | None, shard: str) -> None:
        """A GetRecords call on ``used`` went through: its ``NextShardIterator`` reads the same shard."""
        with self._lock:
            self._iterators.pop(used, None)
            if following:
                self._iterators[following] = shard

    def admit_read(self, shard: str) -> bool:
        """Whether one more GetRecords call on ``shard`` fits in the current second."""
        with self._lock:
            window = self._roll(self._reads[shard], self._now())
            window.calls += 1
            peak = self.peaks[shard]
            peak.read_calls = max(peak.read_calls, window.calls)
            if window.calls > self.limits.read_calls_per_s or window.bytes >= self.limits.read_bytes_per_s:
                self.refused_reads += 1
                return False
            return True

    def add_read_bytes(self, shard: str, size: int) -> None:
        """Count what a GetRecords call returned against ``shard``'s read bytes."""
        with self._lock:
            self._roll(self._reads[shard], self._now()).bytes += size
