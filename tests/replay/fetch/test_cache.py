"""The cache: keys, listing, removal, and eviction of the least recently used files past the limit."""

from __future__ import annotations

import os
import tempfile
from datetime import date
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from replay.fetch import Cache, FetchRequest, fetch
from replay.fetch.base import Remote
from replay.fetch.http import part_path
from tests.replay.fetch.archive_kit import Archive


def remote(symbol: str, period: str) -> Remote:
    name = f"{symbol}-trades-{period}.zip"
    return Remote("binance", "spot", symbol, "trades", period, f"http://x/{name}", name)


def put(cache: Cache, r: Remote, size: int, mtime: float) -> Path:
    path = cache.path(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (mtime, mtime))
    return path


@settings(max_examples=40)
@given(
    sizes=st.lists(st.integers(1, 50), min_size=1, max_size=8),
    limit=st.integers(1, 200),
    keep_index=st.integers(0, 7),
)
def test_eviction_removes_the_least_recently_used_until_it_fits_and_never_a_file_in_use(
    sizes: list[int], limit: int, keep_index: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cache = Cache(Path(tmp), limit)
        paths = [
            put(cache, remote("BTCUSDT", f"2024-01-{i + 1:02d}"), size, 1_000 + i)
            for i, size in enumerate(sizes)
        ]
        keep = paths[keep_index % len(paths)]
        gone = [e.path for e in cache.evict(keep=[keep])]
        left = [p for p in paths if p.exists()]
        total = sum(p.stat().st_size for p in left)
        assert keep in left and not set(gone) & set(left)
        assert total <= limit or left == [keep]
        stayed = [paths.index(p) for p in left if p != keep]
        removed = [paths.index(p) for p in gone]
        assert not removed or not stayed or max(removed) < min(stayed), "older files go first"
        if gone:  # no more than needed: keeping the last one removed would not have fitted
            assert total + sizes[paths.index(gone[-1])] > limit


def test_listing_leaves_out_downloads_in_progress_and_rm_removes_them_too(tmp_path: Path) -> None:
    cache = Cache(tmp_path, 10**6)
    btc = put(cache, remote("BTCUSDT", "2024-01-01"), 10, 1)
    eth = put(cache, remote("ETHUSDT", "2024-01-01"), 20, 2)
    part_path(eth).write_bytes(b"y" * 5)
    assert [(e.symbol, e.size) for e in cache.entries()] == [("BTCUSDT", 10), ("ETHUSDT", 20)]
    assert cache.remove([e for e in cache.entries() if e.symbol == "ETHUSDT"]) == 25
    assert [e.path for e in cache.entries()] == [btc]
    assert not part_path(eth).exists()


def test_a_cache_hit_marks_the_file_used(archive: Archive) -> None:
    request = FetchRequest("binance", ("BTCUSDT",), (date(2024, 8, 8),))
    path = fetch(request, archive.settings).paths[0]
    os.utime(path, (1, 1))
    fetch(request, archive.settings)
    assert path.stat().st_mtime > 1


def test_a_fetch_past_the_limit_evicts_older_files_not_the_ones_it_needs(archive: Archive) -> None:
    older = FetchRequest("binance", ("BTCUSDT",), (date(2024, 8, 8),))
    first = fetch(older, archive.settings).paths[0]
    os.utime(first, (1, 1))
    small = archive.settings.model_copy(update={"cache_max_bytes": 1})
    second = fetch(FetchRequest("binance", ("BTCUSDT",), (date(2024, 8, 9),)), small).paths[0]
    assert second.is_file() and not first.exists()
