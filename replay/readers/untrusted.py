"""Compressed inputs are untrusted: bounded decompression (zip bombs), safe member names, bounded lines.

A recorded file may come from anywhere (a download, a colleague's capture), so a reader never trusts
the sizes a zip or gzip header claims: it counts the bytes it actually decompresses and stops with a
``ReaderError`` once they pass ``MAX_UNCOMPRESSED_BYTES`` or ``MAX_RATIO`` times the compressed bytes
(the ratio is judged only past ``RATIO_FLOOR_BYTES``, so a small, very regular file still reads).
A zip member whose path is absolute or climbs out with ``..`` is refused. Text lines are cut at
``MAX_LINE_BYTES``: a longer one is a bad line, never a line held whole in memory.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from pathlib import PurePosixPath, PureWindowsPath
from typing import IO, Final, cast

from core.errors import ReaderError

MAX_UNCOMPRESSED_BYTES: Final = 64 << 30
"""Far above a real exchange day (a busy Binance trades day is a few GiB of CSV)."""
MAX_RATIO: Final = 200
"""Market-data CSV and JSON compress 5-20 times; a zip bomb thousands of times."""
RATIO_FLOOR_BYTES: Final = 64 << 20
MAX_LINE_BYTES: Final = 1 << 20
"""One exchange message or CSV row is at most a few KiB; a 1 MiB line is not market data."""


class BoundedStream(io.RawIOBase):
    """Decompressed bytes of ``inner``, refused past the size and ratio caps."""

    def __init__(
        self,
        inner: IO[bytes],
        compressed: Callable[[], int],
        path: str,
    ) -> None:
        super().__init__()
        self.inner = inner
        self.compressed = compressed
        self.path = path
        self.limit = MAX_UNCOMPRESSED_BYTES
        self.ratio = MAX_RATIO
        self.floor = RATIO_FLOOR_BYTES
        self.produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` from the decompressed stream, checking the caps on every read."""
        data = self.inner.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.produced += n
        if self.produced > self.limit:
            raise ReaderError(
                self.path, None,
                f"refused: it decompresses to more than {self.limit:,} bytes (a zip bomb?)",
            )
        packed = max(1, self.compressed())
        if self.produced > self.floor and self.produced > self.ratio * packed:
            raise ReaderError(
                self.path, None,
                f"refused: {packed:,} compressed bytes expand to over {self.produced:,} "
                f"(more than {self.ratio}x; a zip bomb?)",
            )
        return n

    def close(self) -> None:
        self.inner.close()
        super().close()


def open_gzip(path: str) -> IO[bytes]:
    """A gzip file's decompressed bytes, bounded (see the module)."""
    raw = open(path, "rb")  # noqa: SIM115 (closed with the returned stream)
    inner = cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    return io.BufferedReader(BoundedStream(inner, raw.tell, path))


def check_member_name(path: str, name: str) -> None:
    """Refuse a zip member whose name is absolute or leaves the archive's directory (``..``)."""
    for flavour in (PurePosixPath(name), PureWindowsPath(name)):
        if flavour.is_absolute() or flavour.drive or ".." in flavour.parts:
            raise ReaderError(path, None, f"refused: the zip member {name!r} points outside the archive")


def bounded_lines(stream: IO[bytes], limit: int = MAX_LINE_BYTES) -> Callable[[], tuple[bytes, bool]]:
    """A reader of the next line of at most ``limit`` bytes -> (line, whole); a longer line is consumed
    to its end and returned cut (``whole`` False). An empty result is the end of the stream."""

    def next_line() -> tuple[bytes, bool]:
        line = stream.readline(limit + 1)
        if len(line) <= limit or line.endswith(b"\n"):
            return line, True
        while True:
            rest = stream.readline(limit)
            if not rest or rest.endswith(b"\n"):
                return line[:limit], False

    return next_line
