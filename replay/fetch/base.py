"""What a file to fetch is (``Remote``), what an archive module provides (``Archive``), and the errors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path, PurePosixPath

from core.errors import CoattailError
from replay.fetch.settings import FetchSettings


class FetchError(CoattailError):
    """A file could not be fetched from an archive (after the retries), or a request cannot be served."""


class NotInArchive(FetchError):
    """The archive has no such file (HTTP 404): the day is not published or the symbol never existed."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote
        super().__init__(
            f"{remote.source} has no {remote.market} {remote.kind} file for {remote.symbol} on "
            f"{remote.period} ({remote.url} is 404): check the symbol and --market, and that the day is "
            "published (archives lag a day or two)"
        )


class ChecksumMismatch(FetchError):
    """A download's SHA-256 differs from the archive's published checksum; the download was deleted."""


@dataclass(frozen=True)
class Remote:
    """One archive file: its cache key (source, market, symbol, kind, period), where it is, how to check it.

    ``period`` is the day (``2024-01-01``) or the month (``2024-01``) the file covers; ``checksum_url``
    names a published ``<sha256>  <file name>`` file, None when the archive publishes none.
    """

    source: str
    market: str
    symbol: str
    kind: str
    period: str
    url: str
    filename: str
    checksum_url: str | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def key(self) -> PurePosixPath:
        """The file's place in the cache, relative to its root."""
        return PurePosixPath(self.source, self.market, self.symbol, self.kind, self.filename)


class Archive(ABC):
    """One public archive: its markets and kinds, and the URL of each day's (or month's) file."""

    name: str
    markets: tuple[str, ...]  # empty: any market name the archive module accepts
    kinds: tuple[str, ...]
    default_kinds: tuple[str, ...]

    def __init__(self, settings: FetchSettings) -> None:
        self.settings = settings

    @abstractmethod
    def remotes(
        self, market: str, symbol: str, kind: str, days: list[date], *, monthly: bool
    ) -> list[Remote]:
        """The files holding ``kind`` of ``symbol`` on ``days``; raise ``FetchError`` for what cannot be."""

    @abstractmethod
    def verify_content(self, remote: Remote, path: Path) -> None:
        """Raise ``ChecksumMismatch`` when a download without a published checksum is not intact."""
