"""One digest of many files' content that rereads only the files that changed since the last call.

The warm driver's fingerprint (``coattail.run.warm_driver``) covers every source file, config and lock
file of the checkout, about 500 files: reading and hashing them all took about 0.2 s of CPU at each run's
start. The digest of each file is kept in a cache file with the file's identity (size, modification and
change times in ns, inode); a file whose identity is unchanged is not read again. Any write changes a
file's change time (which ``touch`` cannot set back), so an edit is noticed even when it keeps the size
and the modification time. As in git's "racily clean" rule, a file modified in the last
``SETTLE_NS`` before its digest was taken is not trusted to the cache: a second write within the file
system's timestamp granularity could leave its times unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

SETTLE_NS = 2_000_000_000
"""How long a file must have stayed unmodified before its digest is cached."""

Identity = tuple[int, int, int, int]


def _identity(stat: os.stat_result) -> Identity:
    return (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)


def _read_cache(cache: Path) -> dict[str, tuple[Identity, str]]:
    try:
        raw = json.loads(cache.read_text())
        entries: dict[str, tuple[Identity, str]] = {}
        for name, ((size, mtime, ctime, inode), file_digest) in raw.items():
            entries[name] = ((int(size), int(mtime), int(ctime), int(inode)), str(file_digest))
        return entries
    except (OSError, ValueError, TypeError, AttributeError):
        return {}  # none yet, or unreadable: every file is read again


def digest(root: Path, files: Iterable[Path], cache: Path) -> str:
    """The sha256 (hex) of ``files``' names (relative to ``root``) and contents, in the order given;
    each file's own digest comes from ``cache`` when its identity is unchanged, and ``cache`` is
    rewritten (complete or not at all) when anything was read."""
    known = _read_cache(cache)
    fresh: dict[str, tuple[Identity, str]] = {}
    changed = False
    started_ns = time.time_ns()
    total = hashlib.sha256()
    for path in files:
        name = str(path.relative_to(root))
        identity = _identity(path.stat())
        entry = known.get(name)
        settled = max(identity[1], identity[2]) < started_ns - SETTLE_NS
        if entry is None or entry[0] != identity:
            changed = True
            entry = (identity, hashlib.sha256(path.read_bytes()).hexdigest())
            # a file written while it was read: what was read may not be what its identity says
            settled = settled and _identity(path.stat()) == identity
        if settled:
            fresh[name] = entry
        else:
            changed = True
        total.update(name.encode() + b"\0" + entry[1].encode() + b"\0")
    if changed or fresh.keys() != known.keys():
        _write_cache(cache, fresh)
    return total.hexdigest()


def _write_cache(cache: Path, entries: dict[str, tuple[Identity, str]]) -> None:
    # another process may write it at the same time: each writes its own file and renames it
    partial = cache.with_name(f".{cache.name}.{os.getpid()}")
    with contextlib.suppress(OSError):  # a cache that cannot be written only costs the next call time
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps({name: [list(i), d] for name, (i, d) in entries.items()}))
        partial.replace(cache)
