"""The local store of verified archive files: ``<root>/<source>/<market>/<symbol>/<kind>/<file name>``.

A file is only ever placed under its final name after it was verified (downloads go to ``.part`` and
are renamed), so a file present is a file complete. Use refreshes a file's modification time, and the
least recently used files are removed first when the cache grows past its size limit.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from replay.fetch.base import Remote

PART_SUFFIX = ".part"


@dataclass(frozen=True)
class CacheEntry:
    """One cached file and its key."""

    source: str
    market: str
    symbol: str
    kind: str
    filename: str
    path: Path
    size: int
    mtime: float


class Cache:
    """Verified archive files under ``root``, bounded by ``max_bytes``."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def path(self, remote: Remote) -> Path:
        """Where ``remote`` is (or will be) kept."""
        return self.root.joinpath(*remote.key.parts)

    def hit(self, remote: Remote) -> Path | None:
        """The cached file of ``remote``, marked as just used; None when it is not cached."""
        path = self.path(remote)
        if not path.is_file():
            return None
        os.utime(path)
        return path

    def entries(self) -> list[CacheEntry]:
        """Every complete file in the cache (downloads in progress are left out), by key."""
        if not self.root.is_dir():
            return []
        out = []
        for path in self.root.glob("*/*/*/*/*"):
            if not path.is_file() or path.name.endswith(PART_SUFFIX):
                continue
            source, market, symbol, kind = path.relative_to(self.root).parts[:4]
            st = path.stat()
            out.append(CacheEntry(source, market, symbol, kind, path.name, path, st.st_size, st.st_mtime))
        return sorted(out, key=lambda e: (e.source, e.market, e.symbol, e.kind, e.filename))

    def size(self) -> int:
        """Bytes held by complete files."""
        return sum(e.size for e in self.entries())

    def remove(self, entries: Iterable[CacheEntry]) -> int:
        """Delete ``entries`` (and any download in progress of them); the bytes freed."""
        freed = 0
        for entry in entries:
            for path in (entry.path, entry.path.with_name(entry.filename + PART_SUFFIX)):
                if path.exists():
                    freed += path.stat().st_size
                    path.unlink()
        return freed

    def evict(self, keep: Iterable[Path] = ()) -> list[CacheEntry]:
        """Remove least recently used files until the cache fits ``max_bytes``; never one in ``keep``."""
        kept = {Path(p) for p in keep}
        entries = sorted(self.entries(), key=lambda e: e.mtime)
        total = sum(e.size for e in entries)
        gone = []
        for entry in entries:
            if total <= self.max_bytes:
                break
            if entry.path in kept:
                continue
            gone.append(entry)
            total -= entry.size
        self.remove(gone)
        return gone
