"""The replayed market a backtest fills against: one instrument's quotes and trades as NumPy arrays.

Loaded from tapes column-wise (Polars, no per-event Python) and queried with binary searches: a fill
touches only the few quotes or trades after its send time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from core.tape import Tape

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_WALK: int = 64
"""Quotes or trades looked at per step of a walk (extended while an order is not filled)."""


@dataclass(frozen=True)
class Fill:
    """What a market order got: ``qty`` filled (0 when nothing was), its average price, the time of the
    last quote or trade it took."""

    qty: float
    price: float
    ts: int


@dataclass(frozen=True)
class Market:
    """One instrument's top-of-book quotes and trades, each sorted by ``ts_event``."""

    q_ts: I64
    bid: F64
    bid_qty: F64
    ask: F64
    ask_qty: F64
    t_ts: I64
    t_price: F64
    t_qty: F64

    @property
    def events(self) -> int:
        """Quotes plus trades."""
        return len(self.q_ts) + len(self.t_ts)

    def mark(self, ts: I64) -> F64:
        """The last trade price at or before each time (NaN before the first trade)."""
        at = np.searchsorted(self.t_ts, ts, side="right") - 1
        return np.where(at >= 0, self.t_price[np.maximum(at, 0)], np.nan)

    def reference(self, ts: int) -> float:
        """The price an order sent at ``ts`` is bounded around: the mid of the quote then, else the last
        trade price; NaN when neither exists."""
        i = int(np.searchsorted(self.q_ts, ts, side="right")) - 1
        if i >= 0:
            return float((self.bid[i] + self.ask[i]) / 2)
        return float(self.mark(np.array([ts], dtype=np.int64))[0])

    def fill(self, ts: int, is_buy: bool, qty: float, limit: float) -> Fill:
        """A market order (IOC, limit ``limit``) sent at ``ts``: it takes the displayed size of the first
        quote at or after ``ts`` (the ask for a buy, the bid for a sell), the rest at the next quotes,
        until filled or the price passes the limit; an instrument without quotes fills against the next
        trades instead. What is left is cancelled (IOC)."""
        if len(self.q_ts):
            px, size = (self.ask, self.ask_qty) if is_buy else (self.bid, self.bid_qty)
            times = self.q_ts
        else:
            px, size, times = self.t_price, self.t_qty, self.t_ts
        start = int(np.searchsorted(times, ts, side="left"))
        left, cost, last = qty, 0.0, ts
        while left > 0 and start < len(times):
            stop = min(start + _WALK, len(times))
            p, s = px[start:stop], size[start:stop]
            ok = p <= limit if is_buy else p >= limit
            usable = int(np.argmin(ok)) if not ok.all() else len(ok)
            before = np.concatenate(([0.0], np.cumsum(s[:usable])[:-1]))  # size taken ahead of each
            take = np.minimum(s[:usable], np.maximum(left - before, 0))
            used = np.flatnonzero(take > 0)
            cost += float((take * p[:usable]).sum())
            left -= float(take.sum())
            if len(used):
                last = int(times[start + used[-1]])
            if usable < len(ok):
                break
            start = stop
        done = qty - max(left, 0.0)
        return Fill(done, cost / done if done > 0 else float("nan"), last)


def load_markets(tapes: Sequence[Path], keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Market]:
    """The quotes and trades of each ``(exchange, symbol)`` in ``keys`` across the tapes."""
    quotes, trades = [], []
    for path in tapes:
        tape = Tape.open(path)
        quote_columns = ["exchange", "symbol", "ts_event", "bid_px", "bid_qty", "ask_px", "ask_qty"]
        quotes += [pl.read_parquet(f, columns=quote_columns) for f in tape.files("quote")]
        trades += [pl.read_parquet(f, columns=["exchange", "symbol", "ts_event", "price", "qty"])
                   for f in tape.files("trade")]
    q_all = pl.concat(quotes) if quotes else None
    t_all = pl.concat(trades) if trades else None
    out = {}
    for ex, sym in keys:
        def of(frame: pl.DataFrame | None, ex: str = ex, sym: str = sym) -> pl.DataFrame | None:
            if frame is None:
                return None
            return frame.filter((pl.col("exchange") == ex) & (pl.col("symbol") == sym)).sort("ts_event")
        q, t = of(q_all), of(t_all)

        out[(ex, sym)] = Market(
            _ints(q, "ts_event"), _floats(q, "bid_px"), _floats(q, "bid_qty"), _floats(q, "ask_px"),
            _floats(q, "ask_qty"), _ints(t, "ts_event"), _floats(t, "price"), _floats(t, "qty"),
        )
    return out


def _ints(frame: pl.DataFrame | None, name: str) -> I64:
    return np.empty(0, np.int64) if frame is None else frame[name].to_numpy().astype(np.int64)


def _floats(frame: pl.DataFrame | None, name: str) -> F64:
    return np.empty(0, np.float64) if frame is None else frame[name].to_numpy().astype(np.float64)
