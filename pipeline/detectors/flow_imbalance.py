"""MOD-006 order-flow-imbalance: a window's taker-buy and taker-sell notional far from balanced.

Exact rules: docs/DETECTORS.md, "MOD-006". Counted trades and windows are MOD-002's (the same
``counted_trades`` and window machinery); no baseline, so a window is evaluated on its own when the
key's clock closes it, and a window without counted trades does not exist.

State of a key (besides the clock kept by ``WindowedDetector``): ``open`` the windows still open as
``{start: [buy sum, sell sum, trades, top buy entries, top sell entries]}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Final

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import Field

from core.events import event_id
from core.frozen import Frozen
from pipeline.alerts import alert_id
from pipeline.detectors.windowed import KeyChunk, WindowedDetector, counted_trades, window_metrics_table
from pipeline.detectors.windows import (
    by_window,
    closing_bound,
    entries_from_json,
    fold_sum,
    merge_top,
    top_k_by_group,
    window_starts,
)
from pipeline.tables import TableDef

if TYPE_CHECKING:
    from pipeline.config import Config

MODULE_ID: Final = "MOD-006"
KIND: Final = "flow_imbalance"
_SEVERITY_STEPS: Final = ((1.0, "critical"), (0.9, "high"), (0.8, "medium"))

FLOW_METRICS_TABLE: Final = window_metrics_table(
    "flow_metrics",
    "MOD-006: taker buy/sell notional per key and closed window with counted trades",
    [
        pa.field("buy_notional_usd", pa.float64(), nullable=False),
        pa.field("sell_notional_usd", pa.float64(), nullable=False),
        pa.field("notional_usd", pa.float64(), nullable=False),
        pa.field("imbalance", pa.float64(), nullable=False),
        pa.field("trades", pa.int64(), nullable=False),
    ],
)


def imbalance_severity(imbalance: float) -> str:
    """``low``; ``medium`` from ``|imbalance|`` 0.8, ``high`` from 0.9, ``critical`` at 1.0."""
    for bound, level in _SEVERITY_STEPS:
        if abs(imbalance) >= bound:
            return level
    return "low"


class FlowImbalanceSettings(Frozen):
    """MOD-006: a closed window's taker flow is one-sided."""

    window_seconds: int = Field(60, gt=0)
    min_notional_usd: float = Field(1_000_000.0, ge=0)
    threshold: float = Field(0.7, gt=0, le=1)


class FlowImbalanceDetector(WindowedDetector[FlowImbalanceSettings]):
    """MOD-006: ``(B - S) / (B + S)`` per closed window; fires when one-sided on real volume."""

    module_id: ClassVar[str] = MODULE_ID
    name: ClassVar[str] = "order-flow-imbalance"
    description: ClassVar[str] = "a window's taker buy/sell notional is one-sided"
    settings_model: ClassVar[type[Frozen]] = FlowImbalanceSettings
    metric_tables: ClassVar[tuple[TableDef, ...]] = (FLOW_METRICS_TABLE,)

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.s = self.settings
        self.width = self.s.window_seconds * 1_000_000

    def process_chunk(
        self, chunk: KeyChunk, state: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], dict[str, pd.DataFrame]]:
        """Add the chunk's counted trades to their windows, then evaluate the windows it closed."""
        state.setdefault("open", {})
        if len(chunk.trades):
            rows = np.flatnonzero(counted_trades(chunk.trades))
            if len(rows):
                self._accumulate(chunk, rows, state)
        alerts, metrics = self._close(chunk, state)
        if not metrics:
            return alerts, {}
        return alerts, {"flow_metrics": pd.DataFrame(metrics, columns=FLOW_METRICS_TABLE.schema.names)}

    def _accumulate(self, chunk: KeyChunk, rows: Any, state: dict[str, Any]) -> None:
        """``rows``: positions of the counted trades in ``chunk.trades``."""
        trades = chunk.trades
        notional = trades["notional_usd"].to_numpy(dtype=np.float64)[rows]
        sell = (trades["side"].to_numpy() == "sell")[rows]
        wins = window_starts(trades["ts_event"].to_numpy(dtype=np.int64)[rows], self.width)
        # one group per window and side: window starts are multiples of the width, so start + 1 is free
        groups = wins + sell.astype(np.int64)
        tops = top_k_by_group(groups, notional, chunk.kind_arrival("trade")[rows])
        trade_ids = trades["trade_id"].to_numpy()

        def name(i: int) -> str:
            return event_id("trade", chunk.exchange, chunk.symbol, int(trade_ids[rows[i]]))

        for start, part in by_window(wins):
            buy_sum, sell_sum, count, top_buy, top_sell = state["open"].get(str(start), [0.0, 0.0, 0, [], []])
            sides = sell[part]
            state["open"][str(start)] = [
                fold_sum(float(buy_sum), notional[part[~sides]]),
                fold_sum(float(sell_sum), notional[part[sides]]),
                int(count) + len(part),
                merge_top(top_buy, tops.get(start, []), name),
                merge_top(top_sell, tops.get(start + 1, []), name),
            ]

    def _close(
        self, chunk: KeyChunk, state: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        bound = closing_bound(chunk.max_ts, self.delay_us, self.width)
        alerts: list[dict[str, Any]] = []
        metrics: list[dict[str, Any]] = []
        for start in sorted(int(k) for k in state["open"] if int(k) < bound):
            buy, sell, count, top_buy, top_sell = state["open"].pop(str(start))
            total = float(buy) + float(sell)
            imbalance = (float(buy) - float(sell)) / total
            end = start + self.width
            metrics.append(
                {
                    "exchange": chunk.exchange,
                    "symbol": chunk.symbol,
                    "window_start": start,
                    "window_end": end,
                    "buy_notional_usd": float(buy),
                    "sell_notional_usd": float(sell),
                    "notional_usd": total,
                    "imbalance": imbalance,
                    "trades": int(count),
                }
            )
            if total < self.s.min_notional_usd or abs(imbalance) < self.s.threshold:
                continue
            direction = "buy" if imbalance > 0 else "sell"
            alerts.append(
                {
                    "alert_id": alert_id(MODULE_ID, chunk.exchange, chunk.symbol, start),
                    "detector": MODULE_ID,
                    "kind": KIND,
                    "exchange": chunk.exchange,
                    "symbol": chunk.symbol,
                    "ts_event": end,
                    "window_start": start,
                    "window_end": end,
                    "severity": imbalance_severity(imbalance),
                    "value": imbalance,
                    "threshold": self.s.threshold,
                    "evidence": {
                        "buy_notional_usd": float(buy),
                        "sell_notional_usd": float(sell),
                        "notional_usd": total,
                        "trades": int(count),
                        "direction": direction,
                    },
                    "event_ids": [e[2] for e in entries_from_json(top_buy if imbalance > 0 else top_sell)],
                    **chunk.closer_stamps(end, self.delay_us),
                    "ts_written": None,
                }
            )
        return alerts, metrics
