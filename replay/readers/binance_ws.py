"""Binance WebSocket captures: one message a line, optionally prefixed by the receive time.

``<receive time> <JSON>`` (ns, µs, ms or s since the epoch, told apart by magnitude) or plain JSON;
messages are raw payloads or combined-stream envelopes ``{"stream", "data"}``. ``trade``, ``aggTrade``
and ``bookTicker`` become events through ``pipeline.connectors.binance`` (the live connector's own
parser); other streams (depth, REST snapshots) are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.connectors.binance import parse_binance_message
from replay.readers.base import BadLines, Chunk, Reader, Stats, register
from replay.readers.lines import read_lines, seconds_to_us


def _split(line: str) -> tuple[int | None, str]:
    text = line.strip()
    if text.startswith("{"):
        return None, text
    prefix, _, rest = text.partition(" ")
    return seconds_to_us(prefix), rest.strip()


def _kind(msg: dict[str, Any]) -> str:
    if "stream" in msg:
        return str(msg["stream"]).split("@", 1)[-1]
    return str(msg.get("e", "snapshot" if "lastUpdateId" in msg else "other"))


@register
class BinanceWsReader(Reader):
    """Binance spot and USD-M WebSocket captures (plain or gzip text)."""

    name = "binance-ws"
    source = "binance-ws"

    @classmethod
    def sniff(cls, path: Path, head: str) -> bool:
        first = next((ln for ln in head.splitlines() if ln.strip()), "")
        return ('"stream"' in first and "@" in first) or ('"e":"' in first and '"s":"' in first)

    def read(self, path: Path, bad: BadLines, stats: Stats) -> Iterator[Chunk]:
        return read_lines(path, bad, stats, _split, parse_binance_message, _kind)
