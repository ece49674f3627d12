"""``WindowedDetector``: the per-key base of the event-time window detectors (MOD-002, MOD-003).

The engine calls ``process_key`` once per key and batch with the key's trades and quotes of the batch
(annotated by the sequencer) and the state the previous batch left; a batch run is one call over the
whole key with a fresh state. The two kinds are merged into one arrival-ordered chunk because the
key's clock (docs/DETECTORS.md, "Watermark (per key)") advances with every valid event of the key, of
either kind. A window is evaluated exactly once, when that clock closes it; windows still open when
the input ends are never evaluated, so streaming (any batch split) and batch give the same rows.

State is a dict of JSON data (the contract of ``pipeline.detectors.base``):
``max_ts`` (the key's clock), ``arrivals`` (events of the key so far, for arrival-order ties across
batches) and whatever the subclass keeps, all bounded (open windows span at most the watermark delay
plus one window; histories are trimmed to ``baseline_windows``).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import Field, model_validator

from core.events import EventKind
from core.frozen import Frozen
from pipeline.detectors.base import DetectorOutput, Key, KeyedDetector, S, alerts_frame, opt_int
from pipeline.detectors.windows import F64, I64, NO_TIME, BoolArr, closing_rows, running_max
from pipeline.tables import TableDef


@dataclass
class KeyChunk:
    """One batch of a key's valid events, both kinds merged in arrival order, with the key's clock.

    ``trades`` and ``quotes`` are the key's frames as the engine gave them (each in arrival order);
    ``is_trade`` says how they interleave, so a detector reads one kind's columns without a merge.
    """

    exchange: str
    symbol: str
    trades: pd.DataFrame
    quotes: pd.DataFrame
    is_trade: BoolArr
    """Per merged row: a trade (else a quote)."""
    ts: I64
    """Per merged row: ``ts_event``."""
    arrival: I64
    """Arrival index within the key, continuing across batches."""
    running_max: I64
    max_ts: int

    @classmethod
    def merge(cls, key: Key, trades: pd.DataFrame, quotes: pd.DataFrame, state: dict[str, Any]) -> KeyChunk:
        """Interleave the two arrival-sorted frames by ``arrival`` and advance the clock from ``state``."""
        t_arr = trades["arrival"].to_numpy(dtype=np.int64)
        q_arr = quotes["arrival"].to_numpy(dtype=np.int64)
        n = len(t_arr) + len(q_arr)
        is_trade = np.ones(n, dtype=bool)
        is_trade[np.searchsorted(t_arr, q_arr) + np.arange(len(q_arr))] = False
        start = int(state["arrivals"])
        chunk = cls(
            exchange=key[0],
            symbol=key[1],
            trades=trades,
            quotes=quotes,
            is_trade=is_trade,
            ts=np.empty(0, np.int64),
            running_max=np.empty(0, np.int64),
            max_ts=0,
            arrival=np.arange(start, start + n, dtype=np.int64),
        )
        chunk.ts = chunk.column("ts_event").astype(np.int64)
        chunk.running_max = running_max(chunk.ts, int(state["max_ts"]))
        chunk.max_ts = int(chunk.running_max[-1]) if n else int(state["max_ts"])
        return chunk

    def __len__(self) -> int:
        return len(self.is_trade)

    def column(self, name: str) -> Any:
        """A column both kinds have (``ts_event``, ``late``, ...) over the merged rows."""
        out = np.empty(len(self), dtype=np.result_type(self.trades[name].dtype, self.quotes[name].dtype))
        out[self.is_trade] = self.trades[name].to_numpy()
        out[~self.is_trade] = self.quotes[name].to_numpy()
        return out

    def price_feed(self) -> tuple[BoolArr, F64]:
        """Per merged row, what ``PriceAsOf.feed`` takes: a counted trade for the price as of a time
        (valid, neither late nor a duplicate), and its price (NaN for quotes)."""
        trades = self.trades
        counted = np.zeros(len(self), dtype=bool)
        late, duplicate = trades["late"].to_numpy(dtype=bool), trades["duplicate"].to_numpy(dtype=bool)
        counted[self.is_trade] = ~late & ~duplicate
        price = np.full(len(self), np.nan)
        price[self.is_trade] = trades["price"].to_numpy(dtype=np.float64)
        return counted, price

    def kind_arrival(self, kind: EventKind) -> I64:
        """The arrival index of each row of ``trades`` (kind ``trade``) or ``quotes``, in frame order."""
        return self.arrival[self.is_trade if kind == "trade" else ~self.is_trade]

    def closer_stamps(self, window_end: int, delay_us: int) -> dict[str, int | None]:
        """``ts_sent``, ``ts_ingest`` and the batch ``arrival`` of the event whose arrival closed the
        window ending at ``window_end``, as alert record fields.

        That event is the start of the alert's latency (the window could not be evaluated earlier) and
        its decision time (``pipeline.cross``).
        """
        row = int(closing_rows(self.running_max, np.array([window_end], dtype=np.int64), delay_us)[0])
        return self.row_stamps(row)

    def row_stamps(self, row: int) -> dict[str, int | None]:
        """``ts_sent``, ``ts_ingest`` and the batch ``arrival`` of merged row ``row`` as alert record
        fields (all null when ``row`` is past the chunk: the deciding event has not arrived yet)."""
        if row >= len(self):
            return {"ts_sent": None, "ts_ingest": None, "arrival": None}
        kind_row = int(np.count_nonzero(self.is_trade[:row] == self.is_trade[row]))
        frame = self.trades if self.is_trade[row] else self.quotes
        return {
            "ts_sent": opt_int(frame["ts_sent"].iat[kind_row]),
            "ts_ingest": opt_int(frame["ts_ingest"].iat[kind_row]),
            "arrival": int(frame["arrival"].iat[kind_row]),
        }


def window_metrics_table(name: str, description: str, metrics: list[pa.Field]) -> TableDef:
    """A per-window metrics table: one row per key and window (``exchange, symbol, window_start,
    window_end``, then ``metrics``), identified by ``exchange, symbol, window_start``."""
    key = [
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("window_start", pa.int64(), nullable=False),
        pa.field("window_end", pa.int64(), nullable=False),
    ]
    return TableDef(
        name=name,
        schema=pa.schema(key + metrics),
        key=("exchange", "symbol", "window_start"),
        description=description,
    )


def counted_trades(trades: pd.DataFrame) -> BoolArr:
    """Per trade: counted (docs/DETECTORS.md, MOD-002): valid, not late, not a duplicate, with a USD
    notional. Every module that aggregates trades counts these and only these."""
    notional = trades["notional_usd"].to_numpy(dtype=np.float64, na_value=np.nan)
    counted: BoolArr = (
        ~trades["late"].to_numpy(dtype=bool) & ~trades["duplicate"].to_numpy(dtype=bool) & ~np.isnan(notional)
    )
    return counted


class WindowedSettings(Frozen):
    """What every windowed module is set with: the window width and the trailing history it compares
    with (a module narrows the bounds and defaults and adds its thresholds)."""

    window_seconds: int = Field(60, gt=0)
    baseline_windows: int = Field(30, ge=1)
    min_history: int = Field(5, ge=1)

    @model_validator(mode="after")
    def _history_fits_baseline(self) -> Self:
        # the history is trimmed to baseline_windows, so a larger min_history would never be met
        if self.min_history > self.baseline_windows:
            raise ValueError(
                f"min_history ({self.min_history}) exceeds baseline_windows ({self.baseline_windows}): "
                "the detector could never alert; lower min_history or raise baseline_windows"
            )
        return self


class WindowedDetector(KeyedDetector[S]):
    """Merges a key's kinds, keeps the key's clock, and hands each chunk to ``process_chunk``."""

    inputs: ClassVar[tuple[EventKind, ...]] = ("trade", "quote")

    @property
    def delay_us(self) -> int:
        """The watermark delay: ``spark.watermark_seconds`` of the tier."""
        return self.config.spark.watermark_seconds * 1_000_000

    def new_state(self) -> dict[str, Any]:
        """A key that has seen nothing."""
        return {"max_ts": NO_TIME, "arrivals": 0}

    def process_key(
        self, key: Key, trades: pd.DataFrame, quotes: pd.DataFrame, state: Any
    ) -> tuple[DetectorOutput, Any]:
        """Merge the kinds in arrival order, advance the clock, run ``process_chunk``."""
        if trades.empty and quotes.empty:
            return DetectorOutput(), state
        chunk = KeyChunk.merge(key, trades, quotes, state)
        alerts, metrics = self.process_chunk(chunk, state)
        state["max_ts"] = chunk.max_ts
        state["arrivals"] = int(state["arrivals"]) + len(chunk)
        return DetectorOutput(alerts=alerts_frame(alerts), metrics=metrics), state

    @abstractmethod
    def process_chunk(
        self, chunk: KeyChunk, state: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], dict[str, pd.DataFrame]]:
        """Fold the chunk into ``state`` (in place); return alert rows and metric frames by table."""
