"""A target that writes JSON lines (one wire record a line) to a binary stream, stdout by default."""

from __future__ import annotations

import sys
from typing import BinaryIO

import pyarrow as pa

from replay import wire
from replay.targets.base import Target


class StdoutTarget(Target):
    """Writes each event's wire record followed by a newline; corrupt payloads are written as they are."""

    name = "stdout"

    def __init__(self, stream: BinaryIO | None = None) -> None:
        super().__init__()
        self._stream = stream

    def _send(self, table: pa.Table, ts_sent: int) -> None:
        stream = self._stream or sys.stdout.buffer
        stream.write(b"\n".join(wire.encode(table, ts_sent)) + b"\n")

    def close(self) -> None:
        (self._stream or sys.stdout.buffer).flush()
