"""Coinbase Exchange WebSocket recordings: ``<url> <direction> <ts>: <JSON>`` or ``<ts>: <JSON>`` lines.

``match`` and ``last_match`` messages become trades through ``pipeline.connectors.coinbase`` (the live
connector's parser); the rest is skipped and counted. Trade ids are consecutive per product on Coinbase,
so a jump in them means lost matches: the reader counts and reports those gaps (the feed ``sequence``
also numbers order-book messages, which a matches-only recording never sees, so it cannot tell).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.connectors.coinbase import parse_coinbase_message
from replay.readers.base import BadLines, Chunk, Reader, Stats, register
from replay.readers.lines import read_lines, seconds_to_us


def _split(line: str) -> tuple[int | None, str]:
    text = line.strip()
    if text.startswith("{"):
        return None, text
    head, sep, rest = text.partition(": ")
    if not sep:
        # a connection line (``<url> <-> <ts>``) carries no message
        return seconds_to_us(head.split()[-1]), ""
    return seconds_to_us(head.split()[-1]), rest


def _kind(msg: dict[str, Any]) -> str:
    return str(msg.get("type", "other"))


@register
class CoinbaseWsReader(Reader):
    """Coinbase Exchange WebSocket recordings (cryptofeed style or plain JSON lines)."""

    name = "coinbase-ws"
    source = "coinbase-ws"

    @classmethod
    def sniff(cls, path: Path, head: str) -> bool:
        return "coinbase" in head[:200].lower() or ('"type":"' in head and '"product_id"' in head)

    def read(self, path: Path, bad: BadLines, stats: Stats) -> Iterator[Chunk]:
        last: dict[str, int] = {}
        gaps: dict[str, int] = {}

        def track(msg: dict[str, Any], line: int) -> None:
            if msg.get("type") not in ("match", "last_match"):
                return
            product, tid = str(msg.get("product_id")), int(msg["trade_id"])
            prev = last.get(product)
            if prev is not None and tid > prev + 1:
                gaps[product] = gaps.get(product, 0) + tid - prev - 1
            last[product] = max(tid, prev or tid)

        yield from read_lines(path, bad, stats, _split, parse_coinbase_message, _kind, on_message=track)
        for product, missing in sorted(gaps.items()):
            stats.notes.append(f"{path.name}: {product}: {missing} trade ids missing (sequence gaps)")
