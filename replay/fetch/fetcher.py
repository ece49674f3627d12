"""Fetching: plan the files of a request, download the missing ones in parallel into the cache (each
verified before it gets its final name), then import them into a tape."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Protocol

from core.errors import ConfigError
from replay.fetch.base import Archive, ChecksumMismatch, FetchError, NotInArchive, Remote
from replay.fetch.binance import BinanceArchive
from replay.fetch.cache import Cache
from replay.fetch.http import download, get_text, part_path
from replay.fetch.settings import FetchSettings
from replay.fetch.tardis import TardisArchive
from replay.readers import ImportResult, import_files

ARCHIVES: dict[str, type[Archive]] = {"binance": BinanceArchive, "tardis": TardisArchive}


@dataclass(frozen=True)
class FetchRequest:
    """Which files: a source, a market, symbols, kinds (empty: the archive's default) and days."""

    source: str
    symbols: tuple[str, ...]
    days: tuple[date, ...]
    kinds: tuple[str, ...] = ()
    market: str = "spot"
    monthly: bool = False


@dataclass
class FetchResult:
    """The cached files of a request in plan order, and what had to be downloaded for them."""

    paths: list[Path] = field(default_factory=list)
    downloaded: list[Remote] = field(default_factory=list)
    cached: list[Remote] = field(default_factory=list)
    missing: list[Remote] = field(default_factory=list)
    bytes_downloaded: int = 0


class FetchProgress(Protocol):
    """What a progress display is told while files are fetched (called from the download threads)."""

    def add_bytes_total(self, n: int) -> None:
        """A download's size became known."""

    def advance_bytes(self, n: int) -> None:
        """``n`` more bytes are on disk (negative when a download starts over)."""

    def file_done(self, remote: Remote, cached: bool) -> None:
        """A file is in the cache (``cached``: it already was)."""


def archive_for(source: str, settings: FetchSettings) -> Archive:
    """The archive called ``source``."""
    cls = ARCHIVES.get(source)
    if cls is None:
        raise ConfigError(f"unknown source {source!r}; choose one of {', '.join(ARCHIVES)}")
    return cls(settings)


def plan(request: FetchRequest, settings: FetchSettings) -> list[Remote]:
    """The files ``request`` needs, by symbol, kind and period."""
    archive = archive_for(request.source, settings)
    if archive.markets and request.market not in archive.markets:
        raise ConfigError(
            f"{archive.name} has no market {request.market!r}; choose one of {', '.join(archive.markets)}"
        )
    kinds = request.kinds or archive.default_kinds
    unknown = [k for k in kinds if k not in archive.kinds]
    if unknown:
        raise ConfigError(
            f"{archive.name} has no kind {unknown[0]!r}; choose from {', '.join(archive.kinds)}"
        )
    if not request.symbols or not request.days:
        raise ConfigError("nothing to fetch: give at least one symbol and one day")
    days = list(request.days)
    return [
        remote
        for symbol in request.symbols
        for kind in kinds
        for remote in archive.remotes(request.market, symbol, kind, days, monthly=request.monthly)
    ]


def fetch(
    request: FetchRequest,
    settings: FetchSettings,
    progress: FetchProgress | None = None,
    *,
    skip_missing: bool = False,
) -> FetchResult:
    """Bring every file of ``request`` into the cache, ``settings.parallel`` downloads at a time.

    Files not in the archive are an error naming them (after the others are fetched, so nothing done
    is lost) unless ``skip_missing``; then they are listed in ``missing``.
    """
    archive = archive_for(request.source, settings)
    remotes = plan(request, settings)
    cache = Cache(settings.cache_dir, settings.cache_max_bytes)
    result = FetchResult()
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=settings.parallel, thread_name_prefix="fetch")
    try:
        futures = [pool.submit(_fetch_one, r, archive, cache, settings, progress, stop) for r in remotes]
        wait(futures)
    except BaseException:
        stop.set()  # Ctrl-C: downloads in flight stop after their chunk, their part files kept
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    failures: list[FetchError] = []
    for remote, future in zip(remotes, futures, strict=True):
        error = future.exception()
        if isinstance(error, NotInArchive):
            result.missing.append(remote)
        elif isinstance(error, FetchError):
            failures.append(error)
        elif error is not None:
            raise error
        else:
            path, size = future.result()
            result.paths.append(path)
            (result.downloaded if size is not None else result.cached).append(remote)
            result.bytes_downloaded += size or 0
    if failures:
        raise failures[0]
    if result.missing and not (skip_missing and result.paths):
        raise FetchError(_missing_message(remotes, result.missing))
    cache.evict(keep=result.paths)
    return result


def fetch_tape(
    request: FetchRequest,
    settings: FetchSettings,
    out: Path,
    progress: FetchProgress | None = None,
    *,
    overwrite: bool = False,
    skip_missing: bool = False,
    on_import: Callable[[Path], None] | None = None,
) -> tuple[FetchResult, ImportResult]:
    """Fetch ``request`` and import its files into the tape ``out`` (ready for ``coattail run``)."""
    fetched = fetch(request, settings, progress, skip_missing=skip_missing)
    return fetched, import_files(fetched.paths, out, overwrite=overwrite, progress=on_import)


def _fetch_one(
    remote: Remote,
    archive: Archive,
    cache: Cache,
    settings: FetchSettings,
    progress: FetchProgress | None,
    stop: threading.Event,
) -> tuple[Path, int | None]:
    """The cached file of ``remote`` and the bytes downloaded for it (None: it was cached already)."""
    hit = cache.hit(remote)
    if hit is not None:
        if progress is not None:
            progress.file_done(remote, cached=True)
        return hit, None
    expected = _published_sha256(remote, settings) if remote.checksum_url else None
    dest = cache.path(remote)
    part = part_path(dest)
    download(
        remote,
        part,
        settings,
        on_size=progress.add_bytes_total if progress else lambda _n: None,
        on_bytes=progress.advance_bytes if progress else lambda _n: None,
        stop=stop,
    )
    try:
        if expected is not None:
            actual = _sha256(part)
            if actual != expected:
                raise ChecksumMismatch(
                    f"{remote.filename}: SHA-256 {actual} differs from the published {expected} "
                    f"({remote.checksum_url}); the download was deleted, fetch again"
                )
        else:
            archive.verify_content(remote, part)
    except ChecksumMismatch:
        part.unlink(missing_ok=True)
        raise
    size = part.stat().st_size
    os.replace(part, dest)
    if progress is not None:
        progress.file_done(remote, cached=False)
    return dest, size


def _published_sha256(remote: Remote, settings: FetchSettings) -> str:
    assert remote.checksum_url is not None
    text = get_text(remote, remote.checksum_url, settings)
    for line in text.splitlines():
        digest, _, name = line.strip().partition(" ")
        if name.strip().lstrip("*") == remote.filename and len(digest) == 64:
            return digest.lower()
    raise FetchError(
        f"{remote.checksum_url} does not hold a SHA-256 for {remote.filename}: "
        "the archive or mirror is not laid out as expected"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _missing_message(remotes: list[Remote], missing: list[Remote]) -> str:
    gone = {(r.symbol, r.kind) for r in missing}
    whole = sorted(key for key in gone if all(r in missing for r in remotes if (r.symbol, r.kind) == key))
    first = missing[0]
    lines = []
    for symbol, kind in whole:
        lines.append(
            f"{first.source} has no {first.market} {kind} file for {symbol} on any requested day: "
            f"check the symbol exists on {first.source} {first.market} (spelling, --market) in that period"
        )
    partial = [r for r in missing if (r.symbol, r.kind) not in whole]
    if partial:
        lines.append(
            f"{first.source} does not have: "
            + ", ".join(f"{r.symbol} {r.kind} {r.period}" for r in partial[:10])
            + (" ..." if len(partial) > 10 else "")
            + " (HTTP 404; not published yet, or before the symbol listed): narrow --from/--to, or pass "
            "--skip-missing to import the rest"
        )
    return "; ".join(lines)
