"""Line-oriented captures (one exchange message a line, with a receive-time prefix) read as events.

Shared by the Binance and Coinbase WebSocket readers: opening plain or gzip text, splitting the prefix
from the JSON, and buffering the parsed events into chunks.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from core.errors import ReaderError, SchemaError
from core.events import EventKind
from replay.readers.base import CHUNK_ROWS, BadLines, Chunk, Stats, rows_to_chunks
from replay.readers.untrusted import MAX_LINE_BYTES, bounded_lines, open_gzip

Parse = Callable[[dict[str, Any], int | None], list[tuple[EventKind, dict[str, Any]]]]


def open_bytes(path: Path) -> IO[bytes]:
    """The bytes of a plain or gzip file (decompression bounded: ``replay.readers.untrusted``)."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return open_gzip(str(path))
    return open(path, "rb")


def open_text(path: Path) -> IO[str]:
    """A text stream over a plain or gzip file."""
    return io.TextIOWrapper(open_bytes(path), encoding="utf-8", errors="replace")


def head_text(path: Path, size: int = 4096) -> str:
    """The first ``size`` characters (decompressed), for format detection; empty when unreadable."""
    try:
        with open_text(path) as fh:
            return fh.read(size)
    except (OSError, EOFError, zlib.error):
        return ""


def read_lines(
    path: Path,
    bad: BadLines,
    stats: Stats,
    split: Callable[[str], tuple[int | None, str]],
    parse: Parse,
    kind_of: Callable[[dict[str, Any]], str],
    on_message: Callable[[dict[str, Any], int], None] | None = None,
) -> Iterator[Chunk]:
    """Parse every line with ``split`` (receive time in µs, JSON text) and ``parse`` (events)."""
    rows: dict[EventKind, list[dict[str, Any]]] = {"trade": [], "quote": []}
    n = 0
    try:
        with open_bytes(path) as fh:
            next_line = bounded_lines(fh)
            while True:
                raw, whole = next_line()
                if not raw:
                    break
                n += 1
                stats.lines += 1
                if not whole:
                    bad(str(path), n, f"longer than {MAX_LINE_BYTES:,} bytes: not one message", "")
                    continue
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    bad(str(path), n, f"not UTF-8 text ({e.reason} at byte {e.start})", "")
                    continue
                if not line.strip():
                    continue
                try:
                    ts_recv, text = split(line)
                except ValueError as e:
                    bad(str(path), n, f"cannot split the receive time from the message: {e}", line)
                    continue
                if not text:
                    stats.skipped["no message"] += 1
                    continue
                try:
                    msg = json.loads(text)
                except json.JSONDecodeError as e:
                    bad(str(path), n, f"not JSON: {e.msg} at column {e.colno}", line)
                    continue
                if not isinstance(msg, dict):
                    bad(str(path), n, "the message is not a JSON object", line)
                    continue
                try:
                    events = parse(msg, ts_recv)
                except SchemaError as e:
                    bad(str(path), n, str(e), line)
                    continue
                if on_message is not None:
                    on_message(msg, n)
                if not events:
                    stats.skipped[kind_of(msg)] += 1
                for kind, event in events:
                    rows[kind].append(event)
                    stats.events[kind] += 1
                if len(rows["trade"]) + len(rows["quote"]) >= CHUNK_ROWS:
                    yield from rows_to_chunks(rows)
    except (OSError, EOFError, zlib.error) as e:
        raise ReaderError(
            str(path), n + 1 if n else None, f"cannot read the file (truncated or corrupt?): {e}"
        ) from e
    yield from rows_to_chunks(rows)


def seconds_to_us(text: str) -> int:
    """A receive time in seconds (``1618677817.1295161``) or nanoseconds (19 digits) as µs."""
    if "." in text:
        whole, frac = text.split(".", 1)
        return int(whole) * 1_000_000 + int((frac + "000000")[:6])
    value = int(text)
    if value > 10**17:
        return value // 1000
    if value > 10**14:
        return value
    if value > 10**11:
        return value * 1000
    return value * 1_000_000
