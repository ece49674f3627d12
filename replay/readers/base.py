"""What every recorded-format reader shares: the chunk it yields, bad-line handling and the registry.

A reader turns one input file into a stream of ``Chunk`` s (event rows of one kind, in file order,
without ``seq``); ``replay.readers.importer`` numbers, sorts and writes them as a tape. A bad line either
raises ``ReaderError`` (file, line, problem) or, with ``skip_bad``, is counted and copied to the reject
file: nothing is dropped silently.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

import pyarrow as pa

from core.errors import ReaderError
from core.events import SCHEMAS, EventKind, TapeKind

CHUNK_ROWS = 500_000


@dataclass(frozen=True)
class Chunk:
    """Rows of one event kind (the kind's event schema), in the file's order."""

    kind: TapeKind
    table: pa.Table


@dataclass
class Stats:
    """What an import saw, for its summary."""

    lines: int = 0
    events: Counter[str] = field(default_factory=Counter)
    bad: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    """Messages that carry no trade or quote, by type (depth, ticker, subscriptions, ...)."""
    notes: list[str] = field(default_factory=list)


class BadLines:
    """Where bad lines go: an error (default) or, with ``skip_bad``, a count and a reject file."""

    def __init__(self, skip_bad: bool, reject: IO[str] | None, stats: Stats) -> None:
        self.skip_bad = skip_bad
        self.reject = reject
        self.stats = stats

    def __call__(self, path: str, line: int | None, problem: str, raw: str = "") -> None:
        """Report one bad line; raises unless bad lines are skipped."""
        if not self.skip_bad:
            raise ReaderError(path, line, problem)
        self.stats.bad += 1
        if self.reject is not None:
            self.reject.write(f"{path}:{line if line is not None else '-'}\t{problem}\t{raw.rstrip()}\n")


class Reader(ABC):
    """One recorded format. Subclasses set ``name`` and implement ``sniff`` and ``read``."""

    name: ClassVar[str]
    source: ClassVar[str]
    """The tape manifest's ``source`` for this format."""

    @classmethod
    @abstractmethod
    def sniff(cls, path: Path, head: str) -> bool:
        """Whether the file (its name and first lines of text) looks like this format."""

    @abstractmethod
    def read(self, path: Path, bad: BadLines, stats: Stats) -> Iterator[Chunk]:
        """Yield the file's events as chunks in file order."""


def rows_to_chunks(rows: dict[EventKind, list[dict[str, Any]]]) -> Iterator[Chunk]:
    """Turn buffered event dicts into chunks (and empty the buffers)."""
    for kind, items in rows.items():
        if items:
            yield Chunk(kind, pa.Table.from_pylist(items, schema=SCHEMAS[kind]))
            items.clear()


REGISTRY: dict[str, type[Reader]] = {}


def register(cls: type[Reader]) -> type[Reader]:
    """Class decorator: make a reader known by its ``name``."""
    REGISTRY[cls.name] = cls
    return cls
