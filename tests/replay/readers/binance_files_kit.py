"""Writing Binance public-data files from trade/quote rows (the exact column layouts Binance ships)."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any


def write_trades(
    path: Path, rows: list[dict[str, Any]], *, futures: bool, header: bool, unit: str = "ms"
) -> Path:
    """A ``trades`` CSV (zip when ``path`` ends in .zip): spot has 7 columns, futures 6."""
    lines = []
    if header:
        lines.append(
            "id,price,qty,quote_qty,time,is_buyer_maker"
            if futures
            else "id,price,qty,quoteQty,time,isBuyerMaker,isBestMatch"
        )
    for r in rows:
        t = r["ts_event"] // 1000 if unit == "ms" else r["ts_event"]
        maker = "true" if r["side"] == "sell" else "false"
        cells = [r["trade_id"], repr(r["price"]), repr(r["qty"]), repr(r["price"] * r["qty"]), t, maker]
        if not futures:
            cells[5] = maker.capitalize()
            cells.append("True")
        lines.append(",".join(str(c) for c in cells))
    return _emit(path, "\n".join(lines) + "\n")


def write_agg_trades(path: Path, rows: list[dict[str, Any]], *, futures: bool, header: bool) -> Path:
    """An ``aggTrades`` CSV: spot 8 columns, futures 7 (``transact_time``)."""
    lines = []
    if header:
        lines.append(
            "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
            if futures
            else "agg_trade_id,price,quantity,first_trade_id,last_trade_id,timestamp,"
            "is_buyer_maker,is_best_match"
        )
    for r in rows:
        maker = "true" if r["side"] == "sell" else "false"
        cells = [
            r["trade_id"],
            repr(r["price"]),
            repr(r["qty"]),
            r["trade_id"] * 3,
            r["trade_id"] * 3 + 2,
            r["ts_event"] // 1000,
            maker,
        ] + ([] if futures else ["true"])
        lines.append(",".join(str(c) for c in cells))
    return _emit(path, "\n".join(lines) + "\n")


def write_book_ticker(path: Path, rows: list[dict[str, Any]], *, header: bool) -> Path:
    """A futures ``bookTicker`` CSV."""
    lines = (
        ["update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time"]
        if header
        else []
    )
    for r in rows:
        t = r["ts_event"] // 1000
        lines.append(
            f"{r['update_id']},{r['bid_px']!r},{r['bid_qty']!r},{r['ask_px']!r},{r['ask_qty']!r},{t},{t + 1}"
        )
    return _emit(path, "\n".join(lines) + "\n")


def _emit(path: Path, text: str) -> Path:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(path.with_suffix(".csv").name, text)
    else:
        path.write_text(text)
    return path
