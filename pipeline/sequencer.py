"""The per-key facts of docs/DETECTORS.md, computed once per batch for every detector.

For each key ``(exchange, symbol)`` in arrival order, with the key's state from earlier batches:
``late`` (watermark), ``duplicate`` and ``id_gap`` (trade ids), ``price_band`` (jump from the previous
trade), ``stale`` (gap since the previous non-late event of the same kind), ``crossed``/``locked``
(quotes), each trade's ``notional_usd`` and every event's ``clock`` (its key's clock once it arrived).
Everything is vectorised with pandas group-wise cumulative
operations seeded by the state, so the result does not depend on how the input is split into batches.

Trade ids already seen are kept as a sorted list of closed intervals: an exchange's ids are nearly
contiguous, so the state stays a handful of numbers per key however long the stream runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Final

import numpy as np
import pandas as pd

from core.errors import PipelineError
from pipeline.config import Config
from pipeline.detectors.base import Key
from pipeline.detectors.data_quality import DataQualitySettings

_KEY: Final = ["exchange", "symbol"]
_NO_ID: Final = np.iinfo(np.int64).min
"""Stands for "no trade id yet" inside int64 arrays (always paired with a has-value mask)."""


@dataclass
class KeyState:
    """What the sequencer remembers about one key between batches."""

    max_ts: float = np.nan
    max_trade_id: int | None = None
    """Exact, as an int: exchange ids may exceed 2**53, beyond which float64 loses units."""
    last_price: float = np.nan
    last_ts_trade: float = np.nan
    """ts_event of the last non-late trade in arrival order (not the maximum)."""
    last_ts_quote: float = np.nan
    seen_ids: list[tuple[int, int]] = field(default_factory=list)
    """Closed intervals of trade ids seen, sorted and disjoint."""

    def to_json(self) -> dict[str, Any]:
        """The state as JSON data (``pipeline.versioned_json``: floats exact, NaN included)."""
        return {
            "max_ts": self.max_ts,
            "max_trade_id": self.max_trade_id,
            "last_price": self.last_price,
            "last_ts_trade": self.last_ts_trade,
            "last_ts_quote": self.last_ts_quote,
            "seen_ids": [[lo, hi] for lo, hi in self.seen_ids],
        }

    @classmethod
    def from_json(cls, data: Any) -> KeyState:
        """The state ``to_json`` wrote; ``PipelineError`` saying which field is wrong otherwise."""
        if type(data) is not dict or data.keys() != _FIELDS:
            raise PipelineError(f"a sequencer key state needs exactly the fields {sorted(_FIELDS)}: {data!r}")
        floats = {name: data[name] for name in ("max_ts", "last_price", "last_ts_trade", "last_ts_quote")}
        for name, value in floats.items():
            if type(value) is not float:
                raise PipelineError(f"sequencer key state: {name} is {value!r}, not a float")
        max_id, seen = data["max_trade_id"], data["seen_ids"]
        if max_id is not None and type(max_id) is not int:
            raise PipelineError(f"sequencer key state: max_trade_id is {max_id!r}, not an int")
        if type(seen) is not list or not all(
            type(pair) is list and len(pair) == 2 and type(pair[0]) is int and type(pair[1]) is int
            for pair in seen
        ):
            raise PipelineError(f"sequencer key state: seen_ids is {seen!r}, not a list of [int, int]")
        return cls(max_trade_id=max_id, seen_ids=[(lo, hi) for lo, hi in seen], **floats)


_FIELDS: Final = frozenset(f.name for f in fields(KeyState))


def merge_intervals(intervals: list[tuple[int, int]], ids: np.ndarray) -> list[tuple[int, int]]:
    """``intervals`` plus every id of ``ids``, merged into sorted disjoint closed intervals."""
    # sort and drop repeats rather than np.unique: its hashing of near-consecutive int64 ids (an
    # exchange's) took seconds per million, where a stable sort of those nearly sorted ids is linear
    ordered = np.sort(ids.astype(np.int64), kind="stable")
    uniq = ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))] if len(ordered) else ordered
    runs: list[tuple[int, int]] = []
    if len(uniq):
        breaks = np.flatnonzero(np.diff(uniq) != 1)
        starts = np.concatenate(([0], breaks + 1))
        ends = np.concatenate((breaks, [len(uniq) - 1]))
        runs = [(int(uniq[s]), int(uniq[e])) for s, e in zip(starts, ends, strict=True)]
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(intervals + runs):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def in_intervals(intervals: list[tuple[int, int]], ids: np.ndarray) -> np.ndarray:
    """Boolean mask: which ids fall in one of the sorted disjoint ``intervals``."""
    if not intervals:
        return np.zeros(len(ids), dtype=bool)
    lows = np.array([lo for lo, _ in intervals], dtype=np.int64)
    highs = np.array([hi for _, hi in intervals], dtype=np.int64)
    idx = np.searchsorted(lows, ids, side="right") - 1
    safe = np.clip(idx, 0, None)
    return (idx >= 0) & (ids <= highs[safe])


class Sequencer:
    """Annotates valid events with the per-key facts; owns the per-key ``KeyState``."""

    def __init__(self, config: Config) -> None:
        self.delay_us = config.spark.watermark_seconds * 1_000_000
        dq = config.settings_of(DataQualitySettings)
        self.band_pct = dq.price_band_pct
        self.stale_us = dq.stale_feed_seconds * 1_000_000
        self.instruments = config.instruments
        self.states: dict[Key, KeyState] = {}

    def annotate(self, events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Valid events of both kinds sorted by ``arrival`` -> (trades, quotes) annotated; updates state."""
        events = events.copy(deep=False)  # a new index, the data shared: no copy of the batch
        events.index = pd.RangeIndex(len(events))
        codes, key_list = key_codes(events["exchange"], events["symbol"])
        states = [self.states.get(k) or KeyState() for k in key_list]

        def seed(attr: str) -> np.ndarray:
            per_key = np.array([getattr(s, attr) for s in states], dtype=np.float64)
            return per_key[codes] if len(codes) else np.zeros(0)

        ts = events["ts_event"].to_numpy(dtype=np.float64)
        by_key = pd.Series(codes)
        prev_max = _prev_cummax(ts, by_key, seed("max_ts"))
        late = ts < prev_max - self.delay_us  # NaN (no earlier event) compares False

        is_trade = (events["kind"] == "trade").to_numpy()
        # take() gives new frames (not views of ``events``): one copy each, and columns can be added
        trades = events.take(np.flatnonzero(is_trade))
        quotes = events.take(np.flatnonzero(~is_trade))
        t_codes, q_codes = codes[is_trade], codes[~is_trade]
        trades["late"] = late[is_trade]
        quotes["late"] = late[~is_trade]
        clock = np.fmax(prev_max, ts).astype(np.int64)  # float64 holds µs times exactly (< 2**53)
        trades["clock"] = clock[is_trade]
        quotes["clock"] = clock[~is_trade]
        has_max_id = np.array([s.max_trade_id is not None for s in states], dtype=bool)
        max_id = np.array([s.max_trade_id or 0 for s in states], dtype=np.int64)
        self._trades(trades, t_codes, key_list, states, max_id[t_codes], has_max_id[t_codes],
                     seed("last_price")[is_trade], seed("last_ts_trade")[is_trade])
        quotes["stale"] = self._stale(quotes, q_codes, seed("last_ts_quote")[~is_trade])
        quotes["crossed"] = quotes["bid_px"] > quotes["ask_px"]
        quotes["locked"] = quotes["bid_px"] == quotes["ask_px"]

        # state after the batch
        frame = pd.DataFrame({"code": codes, "ts": ts})
        max_ts = frame.groupby("code")["ts"].max()
        for code, value in max_ts.items():
            st = states[int(code)]
            st.max_ts = float(np.fmax(st.max_ts, value))
        if len(trades):
            ids = trades["trade_id"].to_numpy(dtype=np.int64)
            prices = trades["price"].to_numpy(dtype=np.float64)
            order = np.argsort(t_codes, kind="stable")  # each key's trades together, in arrival order
            bounds = np.flatnonzero(np.diff(t_codes[order])) + 1
            for rows in np.split(order, bounds):
                st = states[int(t_codes[rows[0]])]
                top = int(ids[rows].max())
                st.max_trade_id = top if st.max_trade_id is None else max(st.max_trade_id, top)
                st.last_price = float(prices[rows[-1]])
                st.seen_ids = merge_intervals(st.seen_ids, ids[rows])
            for code, at in _last_rows(t_codes, ~trades["late"].to_numpy(dtype=bool)):
                states[code].last_ts_trade = float(trades["ts_event"].iat[at])
        if len(quotes):
            for code, at in _last_rows(q_codes, ~quotes["late"].to_numpy(dtype=bool)):
                states[code].last_ts_quote = float(quotes["ts_event"].iat[at])
        for key, st in zip(key_list, states, strict=True):
            self.states[key] = st
        trades.index = pd.RangeIndex(len(trades))
        quotes.index = pd.RangeIndex(len(quotes))
        return trades, quotes

    def _trades(
        self,
        trades: pd.DataFrame,
        codes: np.ndarray,
        keys: list[Key],
        states: list[KeyState],
        seed_max_id: np.ndarray,
        seed_has_max_id: np.ndarray,
        seed_price: np.ndarray,
        seed_ts: np.ndarray,
    ) -> None:
        by_key = pd.Series(codes, index=trades.index)
        ids = trades["trade_id"].to_numpy(dtype=np.int64)
        prev_max_id, has_prev = _prev_cummax_int(ids, by_key, seed_max_id, seed_has_max_id)
        prev_max_id = np.where(has_prev, prev_max_id, ids - 1)  # no previous id: no gap (and no wrap-around)
        trades["id_gap"] = np.maximum(ids - prev_max_id - 1, 0)
        dup = pd.DataFrame({"key": codes, "trade_id": ids}).duplicated().to_numpy()
        for code in np.unique(codes):
            mask = codes == code
            dup[mask] |= in_intervals(states[int(code)].seen_ids, ids[mask])
        trades["duplicate"] = dup
        price = trades["price"].to_numpy(dtype=np.float64)
        prev_price = _prev_value(price, by_key, seed_price)
        with np.errstate(invalid="ignore", divide="ignore"):
            trades["price_band"] = np.abs(price - prev_price) / prev_price * 100.0 > self.band_pct
        trades["stale"] = self._stale(trades, codes, seed_ts)
        reg = self.instruments
        currency = np.array([reg.quote_of(*key) for key in keys], dtype=object)
        rate = np.array([reg.usd_rate(*key) for key in keys], dtype=np.float64)
        qty = trades["qty"].to_numpy(dtype=np.float64)
        trades["quote_currency"] = currency[codes]
        trades["notional_usd"] = price * qty * rate[codes]

    def _stale(self, frame: pd.DataFrame, codes: np.ndarray, seed_ts: np.ndarray) -> np.ndarray:
        stale = np.zeros(len(frame), dtype=bool)
        if not len(frame):
            return stale
        non_late = ~frame["late"].to_numpy(dtype=bool)
        ts = frame["ts_event"].to_numpy(dtype=np.float64)[non_late]
        prev = _prev_value(ts, pd.Series(codes[non_late]), seed_ts[non_late])
        stale[non_late] = ts - prev >= self.stale_us
        return stale


def key_codes(exchange: pd.Series, symbol: pd.Series) -> tuple[np.ndarray, list[Key]]:
    """Each row's key ``(exchange, symbol)`` as a code into the returned keys, numbered in order of
    first appearance; each column is hashed once on its own (no Python tuple per row)."""
    ex_codes, exchanges = pd.factorize(exchange)
    sym_codes, symbols = pd.factorize(symbol)
    width = max(len(symbols), 1)
    codes, pairs = pd.factorize(ex_codes.astype(np.int64) * width + sym_codes)
    keys: list[Key] = [(str(exchanges[p // width]), str(symbols[p % width])) for p in pairs.tolist()]
    return codes, keys


def _last_rows(codes: np.ndarray, mask: np.ndarray) -> list[tuple[int, int]]:
    """Per key code, the position of its last row where ``mask`` holds (keys with none are left out)."""
    at = np.flatnonzero(mask)
    if not len(at):
        return []
    uniq, first_from_end = np.unique(codes[at][::-1], return_index=True)
    last = at[len(at) - 1 - first_from_end]
    return list(zip(uniq.tolist(), last.tolist(), strict=True))


def _prev_cummax(values: np.ndarray, by_key: pd.Series, seed: np.ndarray) -> np.ndarray:
    """Per key, the maximum of the seed and every earlier value (NaN when there is none)."""
    series = pd.Series(values, index=by_key.index)
    shifted = series.groupby(by_key.to_numpy()).cummax().groupby(by_key.to_numpy()).shift(1)
    out: np.ndarray = np.fmax(shifted.to_numpy(dtype=np.float64), seed)
    return out


def _prev_cummax_int(
    values: np.ndarray, by_key: pd.Series, seed: np.ndarray, has_seed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``_prev_cummax`` in exact int64: (per key, the maximum of the seed and every earlier value;
    whether there is any), the maximum being meaningless where there is none."""
    keys = by_key.to_numpy()
    running = pd.Series(values, index=by_key.index).groupby(keys).cummax()
    shifted = running.groupby(keys).shift(1, fill_value=_NO_ID).to_numpy(dtype=np.int64)
    earlier = by_key.duplicated().to_numpy()
    prev: np.ndarray = np.maximum(shifted, np.where(has_seed, seed, _NO_ID))
    return prev, earlier | has_seed


def _prev_value(values: np.ndarray, by_key: pd.Series, seed: np.ndarray) -> np.ndarray:
    """Per key, the previous value in order, or the seed for a key's first row in the batch."""
    series = pd.Series(values, index=by_key.index)
    shifted = series.groupby(by_key.to_numpy()).shift(1).to_numpy(dtype=np.float64)
    out: np.ndarray = np.where(np.isnan(shifted), seed, shifted)
    return out
