"""Market data for the dashboard's Symbol view, from the replayed tapes: price (the run's thinned series),
notional per minute of exchange time, and the mean quoted spread per minute (bps of the mid)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import polars as pl

from core.events import EventKind
from core.tape import Tape
from core.timefmt import US_PER

MINUTE_US: Final = US_PER["m"]


def tape_symbols(tapes: Sequence[Path]) -> list[str]:
    """The symbols of the tapes, sorted."""
    return sorted({symbol for path in tapes for _, symbol in Tape.open(path).instruments()})


def _series(frame: pl.DataFrame, exchange: str, value: str) -> dict[str, list[Any]]:
    if frame.is_empty():
        return {"t": [], "v": []}
    rows = frame.filter(pl.col("exchange") == exchange)
    return {"t": rows["ts_event"].to_list(), "v": rows[value].to_list()}


def _per_minute(frame: pl.DataFrame, value: pl.Expr, how: str) -> pl.DataFrame:
    bucket = (pl.col("ts_event") // MINUTE_US) * MINUTE_US
    agg = value.sum() if how == "sum" else value.mean()
    return frame.group_by("exchange", bucket.alias("ts_event")).agg(agg.alias("v")).sort("ts_event")


def market(tapes: Sequence[Path], prices: pl.DataFrame, symbol: str) -> dict[str, Any]:
    """``symbol``'s series per exchange (times in µs of exchange time): ``price`` from ``prices`` (the
    run's thinned trade prices), ``notional_per_minute`` (sum of price × qty) and ``spread_bps`` (mean of
    ``(ask - bid) / mid`` per minute) from the tapes."""
    trades = _read(tapes, "trade", ["price", "qty"], symbol)
    quotes = _read(tapes, "quote", ["bid_px", "ask_px"], symbol)
    notional = (
        _per_minute(pl.concat(trades), pl.col("price") * pl.col("qty"), "sum") if trades else pl.DataFrame()
    )
    mid = (pl.col("ask_px") + pl.col("bid_px")) / 2
    spread = (
        _per_minute(pl.concat(quotes), (pl.col("ask_px") - pl.col("bid_px")) / mid * 1e4, "mean")
        if quotes
        else pl.DataFrame()
    )
    price = prices.filter(pl.col("symbol") == symbol).sort("ts_event")
    exchanges = sorted(set(price["exchange"].to_list()) | _exchanges(notional) | _exchanges(spread))
    out = [
        {
            "exchange": exchange,
            "price": _series(price, exchange, "price"),
            "notional_per_minute": _series(notional, exchange, "v"),
            "spread_bps": _series(spread, exchange, "v"),
        }
        for exchange in exchanges
    ]
    return {"symbol": symbol, "exchanges": out}


def _read(tapes: Sequence[Path], kind: EventKind, columns: list[str], symbol: str) -> list[pl.DataFrame]:
    """``symbol``'s events of ``kind`` from each tape that has any."""
    out = []
    for path in tapes:
        tape = Tape.open(path)
        if tape.manifest.rows.get(kind):
            frame = pl.DataFrame(tape.read(kind, ["exchange", "symbol", "ts_event", *columns]))
            out.append(frame.filter(pl.col("symbol") == symbol))
    return out


def _exchanges(frame: pl.DataFrame) -> set[str]:
    return set() if frame.is_empty() else set(frame["exchange"].to_list())
