"""Downloads over HTTP(S) with ``urllib``: resumed with ``Range`` after a dropped connection, retried with
exponential backoff on 5xx and connection errors, never leaving a partial file under the final name.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from replay.fetch.base import FetchError, NotInArchive, Remote
from replay.fetch.settings import TARDIS_KEY_ENV, FetchSettings

CHUNK = 1 << 20
USER_AGENT = "coattail-fetch"
T = TypeVar("T")
_TRANSIENT = (ConnectionError, http.client.HTTPException, socket.timeout, TimeoutError)


class _Retry(Exception):
    """A transient failure: try again (after a backoff) from what is on disk."""


def part_path(dest: Path) -> Path:
    """Where ``dest`` is written while it downloads (renamed to ``dest`` once verified)."""
    return dest.with_name(dest.name + ".part")


def download(
    remote: Remote,
    part: Path,
    settings: FetchSettings,
    *,
    on_size: Callable[[int], None] = lambda _n: None,
    on_bytes: Callable[[int], None] = lambda _n: None,
    stop: threading.Event | None = None,
) -> None:
    """Download ``remote`` into ``part``, resuming what an earlier attempt (or run) left there.

    ``on_size`` is told the total size once known; ``on_bytes`` the change in bytes on disk (negative
    when a server ignores the range and the file starts over), so progress adds up to the file size.
    Setting ``stop`` (Ctrl-C in another thread) ends the download after the current chunk, keeping
    the part file for the next run to resume.
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    counted = 0  # bytes reported to on_bytes so far
    sized = False

    def once() -> None:
        nonlocal counted, sized
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            resp = _open(remote, remote.url, settings, headers)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # the part file is not a prefix of this file: start over
                part.unlink()
                raise _Retry("the server refused the resume range") from e
            raise
        with resp:
            start = have if resp.status == 206 else 0
            length = resp.headers.get("Content-Length")
            total = None if length is None else start + int(length)
            if total is not None and not sized:
                on_size(total)
                sized = True
            on_bytes(start - counted)
            counted = start
            with open(part, "ab" if start else "wb") as out:
                while chunk := resp.read(CHUNK):
                    if stop is not None and stop.is_set():
                        raise FetchError(f"{remote.filename}: interrupted; fetch again to resume")
                    out.write(chunk)
                    on_bytes(len(chunk))
                    counted += len(chunk)
        if total is not None and part.stat().st_size != total:
            raise _Retry(f"connection closed at byte {part.stat().st_size} of {total}")

    _retrying(remote, remote.url, settings, once)


def get_text(remote: Remote, url: str, settings: FetchSettings) -> str:
    """A small file (a checksum) read whole, with the retries and 404 handling of ``download``."""

    def once() -> str:
        with _open(remote, url, settings, {}) as resp:
            data: bytes = resp.read()
        return data.decode("utf-8", "replace")

    return _retrying(remote, url, settings, once)


def _open(
    remote: Remote, url: str, settings: FetchSettings, extra: dict[str, str]
) -> http.client.HTTPResponse:
    headers = {**remote.headers, **extra, "User-Agent": USER_AGENT}
    resp: http.client.HTTPResponse = urllib.request.urlopen(
        urllib.request.Request(url, headers=headers), timeout=settings.timeout_seconds
    )
    return resp


def _retrying(remote: Remote, url: str, settings: FetchSettings, once: Callable[[], T]) -> T:
    """``once()`` until it succeeds: 404 is ``NotInArchive`` at once, 5xx and dropped connections are
    retried ``settings.retries`` times with exponential backoff, anything else is a ``FetchError``."""
    for attempt in range(settings.retries + 1):
        last = attempt == settings.retries
        try:
            return once()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                raise NotInArchive(remote) from e
            if e.code < 500 or last:
                raise FetchError(_http_message(remote, url, e.code, attempt)) from e
        except (_Retry, urllib.error.URLError, *_TRANSIENT) as e:
            if last:
                raise FetchError(
                    f"downloading {url} failed after {attempt + 1} attempts: {_reason(e)}; check the "
                    "network or the archive URL, then fetch again (the download resumes)"
                ) from e
        time.sleep(settings.backoff_seconds * 2**attempt)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _http_message(remote: Remote, url: str, code: int, attempt: int) -> str:
    if code in (401, 403):
        hint = f" (set {TARDIS_KEY_ENV})" if remote.source == "tardis" else ""
        return f"{remote.source} refused {url} (HTTP {code}): the file needs access rights{hint}"
    return f"{url}: HTTP {code} after {attempt + 1} attempts; try again later or use a mirror"


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.URLError):
        return str(e.reason)
    return str(e) or type(e).__name__
