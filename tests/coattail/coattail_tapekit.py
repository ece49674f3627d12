"""Small hand-made tapes for the harness tests: rows given as tuples, times in seconds from T0."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from core.events import EVENT_KINDS
from core.labels import Label
from core.tape import Tape, TapeWriter, tape_schema

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds, aligned to every window
US = 1_000_000


def at(seconds: float) -> int:
    """T0 plus ``seconds``, in microseconds."""
    return T0 + round(seconds * US)


def make_tape(
    path: Path,
    *,
    trades: Sequence[tuple[float, str, int, float, float, str]] = (),
    quotes: Sequence[tuple[float, str, float, float, int]] = (),
    exchange: str = "binance",
    labels: Sequence[Label] = (),
    **manifest: Any,
) -> Tape:
    """Write a tape. ``trades``: (seconds, symbol, trade_id, price, qty, side); ``quotes``:
    (seconds, symbol, bid_px, ask_px, update_id) with quantities of 1. Rows are sorted here and
    numbered with one ``seq`` over both kinds in the given order."""
    rows: list[tuple[int, int, str, dict[str, Any]]] = []
    seq = 0
    for t, symbol, tid, price, qty, side in trades:
        rows.append(
            (
                at(t),
                seq,
                "trade",
                {
                    "exchange": exchange,
                    "symbol": symbol,
                    "trade_id": tid,
                    "price": price,
                    "qty": qty,
                    "side": side,
                    "ts_event": at(t),
                    "ts_recv": None,
                    "seq": seq,
                },
            )
        )
        seq += 1
    for t, symbol, bid, ask, uid in quotes:
        rows.append(
            (
                at(t),
                seq,
                "quote",
                {
                    "exchange": exchange,
                    "symbol": symbol,
                    "bid_px": bid,
                    "bid_qty": 1.0,
                    "ask_px": ask,
                    "ask_qty": 1.0,
                    "update_id": uid,
                    "ts_event": at(t),
                    "ts_recv": None,
                    "seq": seq,
                },
            )
        )
        seq += 1
    rows.sort(key=lambda r: (r[0], r[1]))
    with TapeWriter(path) as writer:
        for kind in EVENT_KINDS:
            kind_rows = [r[3] for r in rows if r[2] == kind]
            if kind_rows:
                writer.write(kind, pa.Table.from_pylist(kind_rows, schema=tape_schema(kind)))
        writer.close(source="synthetic", labels=list(labels), **manifest)
    return Tape.open(path)
