"""MOD-002 volume-anomaly: a window's traded USD notional far above the key's trailing baseline.

Exact rules: docs/DETECTORS.md, "MOD-002". Counted trades are the valid trades the sequencer marked
neither ``late`` nor ``duplicate`` and that have a USD notional.

State of a key (besides the clock kept by ``WindowedDetector``): ``next`` the first window not yet
evaluated (``None`` before the key's first counted trade), ``open`` the windows still open as
``{start: [notional sum, trades, top entries]}`` and ``history`` the notionals of the last
``baseline_windows`` evaluated windows.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Final

import numpy as np
import pandas as pd
from pydantic import Field

from core.events import event_id
from core.frozen import Frozen
from pipeline.alerts import alert_id
from pipeline.detectors.windowed import KeyChunk, WindowedDetector, WindowedSettings, counted_trades
from pipeline.detectors.windows import (
    by_window,
    closing_bound,
    entries_from_json,
    fold_sum,
    merge_top,
    top_k_by_group,
    window_starts,
)

if TYPE_CHECKING:
    from pipeline.config import Config

MODULE_ID: Final = "MOD-002"
KIND: Final = "volume_spike"
_SEVERITY_STEPS: Final = ((3.0, "critical"), (2.0, "high"), (1.5, "medium"), (1.0, "low"))


def severity_for(z: float, z_threshold: float) -> str:
    """``low`` from the threshold, ``medium`` from 1.5x, ``high`` from 2x, ``critical`` from 3x."""
    for multiple, level in _SEVERITY_STEPS:
        if z >= multiple * z_threshold:
            return level
    return "low"


def baseline(history: list[float]) -> tuple[float, float]:
    """Mean and population standard deviation (ddof 0) of the previous windows' notionals."""
    n = len(history)
    mean = math.fsum(history) / n
    return mean, math.sqrt(math.fsum((h - mean) ** 2 for h in history) / n)


class VolumeAnomalySettings(WindowedSettings):
    """MOD-002: a window's notional z standard deviations above the trailing baseline."""

    baseline_windows: int = Field(30, ge=2)
    min_history: int = Field(10, ge=2)
    z_threshold: float = Field(4.0, gt=0)
    std_floor_usd: float = Field(1_000.0, gt=0)
    min_notional_usd: float = Field(100_000.0, ge=0)


class VolumeAnomalyDetector(WindowedDetector[VolumeAnomalySettings]):
    """MOD-002: 1-minute (``window_seconds``) notional against the trailing ``baseline_windows``."""

    module_id: ClassVar[str] = MODULE_ID
    name: ClassVar[str] = "volume-anomaly"
    description: ClassVar[str] = "a 1-minute window's notional is z population std above the previous 30"
    settings_model: ClassVar[type[Frozen]] = VolumeAnomalySettings

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.s = self.settings
        self.width = self.s.window_seconds * 1_000_000

    def process_chunk(
        self, chunk: KeyChunk, state: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], dict[str, pd.DataFrame]]:
        """Add the chunk's counted trades to their windows, then evaluate the windows it closed."""
        state.setdefault("next", None)
        state.setdefault("open", {})
        state.setdefault("history", [])
        trades = chunk.trades
        if len(trades):
            notional = trades["notional_usd"].to_numpy(dtype=np.float64, na_value=np.nan)
            counted = counted_trades(trades)
            if counted.any():
                self._accumulate(chunk, np.flatnonzero(counted), notional, state)
        return self._close(chunk, state), {}

    def _accumulate(self, chunk: KeyChunk, rows: Any, notional_all: Any, state: dict[str, Any]) -> None:
        """``rows``: positions of the counted trades in ``chunk.trades``."""
        notional = notional_all[rows]
        wins = window_starts(chunk.trades["ts_event"].to_numpy(dtype=np.int64)[rows], self.width)
        first = int(wins.min())
        state["next"] = first if state["next"] is None else min(int(state["next"]), first)
        tops = top_k_by_group(wins, notional, chunk.kind_arrival("trade")[rows])
        trade_ids = chunk.trades["trade_id"].to_numpy()
        def name(i: int) -> str:
            return event_id("trade", chunk.exchange, chunk.symbol, int(trade_ids[rows[i]]))

        for start, part in by_window(wins):
            total, count, top = state["open"].get(str(start), [0.0, 0, []])
            state["open"][str(start)] = [
                fold_sum(float(total), notional[part]),
                int(count) + len(part),
                merge_top(top, tops[start], name),
            ]

    def _close(self, chunk: KeyChunk, state: dict[str, Any]) -> list[dict[str, Any]]:
        bound = closing_bound(chunk.max_ts, self.delay_us, self.width)
        if state["next"] is None or int(state["next"]) >= bound:
            return []
        alerts: list[dict[str, Any]] = []
        history = [float(v) for v in state["history"]]
        keep = self.s.baseline_windows
        open_starts = sorted(int(k) for k in state["open"])
        start = int(state["next"])
        while start < bound:
            window = state["open"].pop(str(start), None)
            if window is None:
                # An empty window counts as 0 and never fires (its z is <= 0). A run of empty windows
                # longer than the baseline leaves a history of zeros, so the run is taken in one step.
                stop = min([s for s in open_starts if s > start] + [bound])
                zeros = min((stop - start) // self.width, keep)
                history = (history + [0.0] * zeros)[-keep:]
                start = stop
                continue
            alert = self._evaluate(chunk, start, window, history)
            if alert is not None:
                alerts.append(alert)
            history = [*history, float(window[0])][-keep:]
            start += self.width
        state["next"] = start
        state["history"] = history
        return alerts

    def _evaluate(
        self, chunk: KeyChunk, start: int, window: list[Any], history: list[float]
    ) -> dict[str, Any] | None:
        value, trades = float(window[0]), int(window[1])
        if len(history) < self.s.min_history:
            return None
        mean, std = baseline(history)
        z = (value - mean) / max(std, self.s.std_floor_usd)
        if z < self.s.z_threshold or value < self.s.min_notional_usd:
            return None
        end = start + self.width
        return {
            "alert_id": alert_id(MODULE_ID, chunk.exchange, chunk.symbol, start),
            "detector": MODULE_ID,
            "kind": KIND,
            "exchange": chunk.exchange,
            "symbol": chunk.symbol,
            "ts_event": end,
            "window_start": start,
            "window_end": end,
            "severity": severity_for(z, self.s.z_threshold),
            "value": z,
            "threshold": self.s.z_threshold,
            "evidence": {
                "notional_usd": value,
                "mean": mean,
                "std": std,
                "history": len(history),
                "trades": trades,
            },
            "event_ids": [e[2] for e in entries_from_json(window[2])],
            **chunk.closer_stamps(end, self.delay_us),
            "ts_written": None,
        }
