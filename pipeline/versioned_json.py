"""Versioned JSON documents: state that outlives a process, on shared storage, as data that runs no code.

A document is one JSON object ``{"kind": ..., "format": N, "written_by": "coattail X.Y.Z", ...body}``.
``kind`` names what it holds, so a file of another kind is refused by name instead of being misread;
``format`` is the body's shape, bumped whenever that shape changes. A ``DocumentFormat`` knows its
current format and a table of migrations, one per older format (a document of format ``n`` -> one of
``n + 1``): it upgrades an older document step by step and refuses one older than its oldest migration,
or newer than itself, saying which formats it reads and what to do.

Numbers come back exactly: Python writes a float as the shortest text that reads back as the same
float, and an int at any size (trade ids beyond 2**53 stay exact). Non-finite floats are written as
``NaN``, ``Infinity`` and ``-Infinity``, the JSON extension that Python, Jackson (Spark's JSON reader,
``allowNonNumericNumbers``) and JSON5 read: sequencer and detector state use NaN for "none yet".
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from typing import Any, Final

from core.errors import PipelineError

JSON_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
"""The exact types of JSON's scalars (subclasses such as numpy's float64 or an IntEnum are not)."""

Migration = Callable[[dict[str, Any]], dict[str, Any]]
"""A document of one format -> the same document in the next format (the reader sets ``format``)."""

_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), check_circular=False)
"""Compact; no cycle check, since callers check their body with ``is_json_data`` first."""


def is_json_data(value: Any) -> bool:
    """``value`` comes back equal (and of the same types) from a JSON round trip: dicts with str keys,
    lists, and scalars of exactly ``JSON_SCALARS``' types. A tuple would come back a list and an int
    key a str, silently; ``non_json_at`` says where."""
    kind = type(value)
    if kind in JSON_SCALARS:
        return True
    if kind is list:
        return all(map(is_json_data, value))
    if kind is dict:
        return all(type(k) is str for k in value) and all(map(is_json_data, value.values()))
    return False


def non_json_at(value: Any, path: str = "") -> str | None:
    """Where ``value`` first holds something that is not JSON data, and what (``None`` when it is all
    JSON data), e.g. ``["open"]["60"][2] is a tuple``."""
    kind = type(value)
    if kind in JSON_SCALARS:
        return None
    if kind is list:
        return next((at for i, v in enumerate(value) if (at := non_json_at(v, f"{path}[{i}]"))), None)
    if kind is dict:
        for k, v in value.items():
            if type(k) is not str:
                return f"{path or 'the state'} has the key {k!r}, a {type(k).__name__} (keys must be str)"
            if at := non_json_at(v, f"{path}[{k!r}]"):
                return at
        return None
    return f"{path or 'the state'} is a {kind.__module__}.{kind.__qualname__}"


@cache
def written_by() -> str:
    """This revision's name, for the ``written_by`` of a document (informative: ``format`` decides)."""
    try:
        return f"coattail {metadata.version('coattail')}"
    except metadata.PackageNotFoundError:
        return "coattail (version unknown)"


@contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """The cyclic garbage collector paused: checking, encoding and decoding a large state allocates
    many short-lived containers that form no cycle, and each pass of the collector would rescan the
    whole state (it doubled the encode time and tripled the decode time of 1,000 keys)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass(frozen=True)
class DocumentFormat:
    """One kind of document: its name, its current format, how to read older ones, what to do when
    a document cannot be read."""

    kind: str
    """The ``kind`` tag, e.g. ``coattail.engine-state``."""
    title: str
    """What a user calls it, in messages: ``engine state``."""
    current: int
    remedy: str
    """What to do with a document this revision cannot read: ``start again with a fresh --checkpoint``."""
    migrations: Mapping[int, Migration] = field(default_factory=dict)
    """Format ``n`` -> the function that turns a document of format ``n`` into one of format ``n + 1``."""

    @property
    def oldest(self) -> int:
        """The oldest format a chain of migrations brings to ``current``."""
        oldest = self.current
        while oldest - 1 in self.migrations:
            oldest -= 1
        return oldest

    def refusal(self, where: str, fmt: object, by: object) -> PipelineError:
        """The error for a document of format ``fmt`` written by ``by`` that this revision cannot read."""
        return PipelineError(
            f"{where}: {self.title} format {fmt} written by {by}; this revision reads "
            f"{self.oldest}..{self.current}; {self.remedy}"
        )

    def encode(self, body: Mapping[str, Any]) -> bytes:
        """The document of ``body`` (JSON data: check it with ``is_json_data`` where it comes from
        outside) in the current format, as UTF-8 JSON text."""
        document = {"kind": self.kind, "format": self.current, "written_by": written_by(), **body}
        with no_cyclic_gc():
            return _ENCODER.encode(document).encode()

    def decode(self, blob: bytes, where: str) -> dict[str, Any]:
        """The document ``encode`` wrote, or one of an older format migrated to the current one: the
        whole object (body and envelope fields). ``PipelineError`` naming ``where`` when it is not
        JSON, of another kind, or of a format this revision does not read."""
        try:
            with no_cyclic_gc():
                document = json.loads(blob)
        except ValueError as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise PipelineError(f"{where}: not a JSON {self.title} ({e}); {self.remedy}") from e
        if not isinstance(document, dict) or document.get("kind") != self.kind:
            got = document.get("kind") if isinstance(document, dict) else type(document).__name__
            raise PipelineError(
                f"{where}: a document of kind {got!r} where {self.kind!r} ({self.title}) was expected; "
                f"{self.remedy}"
            )
        fmt, by = document.get("format"), document.get("written_by", "an unknown revision")
        if type(fmt) is not int or not self.oldest <= fmt <= self.current:
            raise self.refusal(where, fmt if type(fmt) is int else repr(fmt), by)
        for step in range(fmt, self.current):
            document = {**self.migrations[step](document), "format": step + 1}
        return document
