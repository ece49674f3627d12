"""MOD-007 sliced-whale: a same-side run of fills that adds up to a whale no single fill reaches.

Exact rules: docs/DETECTORS.md, "MOD-007". Counted trades are MOD-002's (``counted_trades``); the
threshold ``T1`` and the severity multiples are MOD-001's settings, read from there.

A run's last trade closes it at the first event whose clock passes ``last ts_event + max_gap``, or at
the next counted trade when that one is of the other side. The clock never decreases, so each counted
trade's closing row is one ``searchsorted``; runs, their totals and the candidates that may fire are
found with array operations, and only candidates get the exact left-to-right folds (the same bits
whatever the micro-batch split).

State of a key (besides the clock kept by ``WindowedDetector``): ``run`` the open run or ``None``:
``{side, first_id, first_ts, last_ts, trades, total, pq, qty, largest, ids}`` (``pq`` and ``qty``
the folds of price x qty and qty for the VWAP, ``ids`` its first 50 event ids).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Final

import numpy as np
import pandas as pd
from pydantic import Field

from core.events import event_id
from core.frozen import Frozen
from pipeline.alerts import alert_id
from pipeline.detectors.whale import WhaleSettings
from pipeline.detectors.windowed import KeyChunk, WindowedDetector, counted_trades
from pipeline.detectors.windows import MAX_EVENT_IDS, fold_sum

if TYPE_CHECKING:
    from pipeline.config import Config

MODULE_ID: Final = "MOD-007"
KIND: Final = "sliced_whale"
_SCREEN: Final = 1 - 1e-9
"""Runs are screened with vectorised sums (any order) before the exact fold decides; this margin keeps
every run the exact fold could pass."""


class SlicedWhaleSettings(Frozen):
    """MOD-007: a same-side run of counted trades reaching ``threshold_fraction`` of MOD-001's ``T1``."""

    max_gap_ms: int = Field(1_000, ge=0)
    min_trades: int = Field(3, ge=2)
    threshold_fraction: float = Field(1.0, gt=0, le=1)


class SlicedWhaleDetector(WindowedDetector[SlicedWhaleSettings]):
    """MOD-007: runs of same-side counted trades, each below ``T1``, adding up to a whale."""

    module_id: ClassVar[str] = MODULE_ID
    name: ClassVar[str] = "sliced-whale"
    description: ClassVar[str] = "a same-side run of fills adds up to a whale that no single fill reaches"
    settings_model: ClassVar[type[Frozen]] = SlicedWhaleSettings

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.s = self.settings
        self.whale = config.settings_of(WhaleSettings)
        self.gap = self.s.max_gap_ms * 1_000

    def process_chunk(
        self, chunk: KeyChunk, state: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], dict[str, pd.DataFrame]]:
        """Extend, close and evaluate the key's runs over one chunk."""
        run = state.get("run")
        trades = chunk.trades
        rows = np.flatnonzero(counted_trades(trades)) if len(trades) else np.empty(0, np.int64)
        pos = np.flatnonzero(chunk.is_trade)[rows]
        ts = trades["ts_event"].to_numpy(dtype=np.int64)[rows]
        sell = (trades["side"].to_numpy() == "sell")[rows] if len(rows) else np.empty(0, bool)
        # the row at whose arrival each counted trade's run closes if nothing else ends it first
        close = np.maximum(pos, np.searchsorted(chunk.running_max, ts + self.gap, side="right"))
        if run is not None:
            prev_close = int(np.searchsorted(chunk.running_max, int(run["last_ts"]) + self.gap, side="right"))
            prev_sell = run["side"] == "sell"
        else:
            prev_close, prev_sell = len(chunk), False
        ends = np.empty(len(rows), dtype=bool)  # counted trade k starts a new run
        if len(rows):
            ends[0] = run is None or prev_sell != bool(sell[0]) or prev_close <= pos[0]
            ends[1:] = (sell[1:] != sell[:-1]) | (close[:-1] <= pos[1:])
        alerts: list[dict[str, Any]] = []
        continues = run is not None and len(rows) > 0 and not ends[0]
        if run is not None and not continues:
            # the open run ends here: by the clock, or by this chunk's first counted trade
            closing = prev_close if len(rows) == 0 else min(prev_close, int(pos[0]))
            if closing < len(chunk):
                alerts += self._evaluate(chunk, run, closing)
                run = None
        if len(rows) == 0:
            state["run"] = run
            return alerts, {}
        # the chunk's runs as [first, last] counted trades; the first one continues ``run`` when it is open
        firsts = np.flatnonzero(ends)
        if continues:
            firsts = np.r_[0, firsts]
        lasts = np.r_[firsts[1:] - 1, len(rows) - 1]
        # every run but the last is closed by the time its successor starts
        closing_rows = np.minimum(close[lasts], np.r_[pos[firsts[1:]], len(chunk)])
        notional = trades["notional_usd"].to_numpy(dtype=np.float64)[rows]
        candidates = self._candidates(run if continues else None, firsts, lasts, notional, chunk.symbol)
        state["run"] = None
        is_open = closing_rows >= len(chunk)
        # only candidates and the run left open are folded exactly: most runs are one or two fills
        for j in np.flatnonzero(candidates | is_open).tolist():
            prior = run if continues and j == 0 else None
            part = slice(int(firsts[j]), int(lasts[j]) + 1)
            folded = self._fold(chunk, prior, rows[part], notional[part])
            if is_open[j]:
                state["run"] = folded
            else:
                alerts += self._evaluate(chunk, folded, int(closing_rows[j]))
        return alerts, {}

    def _candidates(
        self, run: dict[str, Any] | None, firsts: Any, lasts: Any, notional: Any, symbol: str
    ) -> Any:
        """Per run: might it fire (enough trades and, summed in any order, nearly enough notional)?
        ``run``: the open run the first one continues, if any."""
        if not len(firsts):
            return np.empty(0, dtype=bool)
        t1 = self.whale.threshold(symbol)
        count = (lasts - firsts + 1).astype(np.int64)
        total = np.add.reduceat(notional, firsts)
        largest = np.maximum.reduceat(notional, firsts)
        if run is not None:
            count[0] += int(run["trades"])
            total[0] += float(run["total"])
            largest[0] = max(float(largest[0]), float(run["largest"]))
        fire: Any = (
            (count >= self.s.min_trades)
            & (total >= self.s.threshold_fraction * t1 * _SCREEN)
            & (largest < t1)
        )
        return fire

    def _fold(
        self, chunk: KeyChunk, prior: dict[str, Any] | None, rows: Any, notional: Any
    ) -> dict[str, Any]:
        """The run ``prior`` (or a new one) extended by counted trades at ``rows`` of ``chunk.trades``."""
        trades = chunk.trades
        price = trades["price"].to_numpy(dtype=np.float64)[rows]
        qty = trades["qty"].to_numpy(dtype=np.float64)[rows]
        ids = trades["trade_id"].to_numpy(dtype=np.int64)[rows]
        ts = trades["ts_event"].to_numpy(dtype=np.int64)[rows]
        run = prior or {
            "side": str(trades["side"].iat[int(rows[0])]),
            "first_id": int(ids[0]),
            "first_ts": int(ts[0]),
            "trades": 0,
            "total": 0.0,
            "pq": 0.0,
            "qty": 0.0,
            "largest": 0.0,
            "ids": [],
        }
        room = max(0, MAX_EVENT_IDS - len(run["ids"]))
        return {
            **run,
            "last_ts": int(ts[-1]),
            "trades": int(run["trades"]) + len(rows),
            "total": fold_sum(float(run["total"]), notional),
            "pq": fold_sum(float(run["pq"]), price * qty),
            "qty": fold_sum(float(run["qty"]), qty),
            "largest": max(float(run["largest"]), float(notional.max())),
            "ids": [
                *run["ids"],
                *(event_id("trade", chunk.exchange, chunk.symbol, int(i)) for i in ids[:room]),
            ],
        }

    def _evaluate(self, chunk: KeyChunk, run: dict[str, Any], closing: int) -> list[dict[str, Any]]:
        """The alert of a run that closed at merged row ``closing``, if it fires."""
        t1 = self.whale.threshold(chunk.symbol)
        total = float(run["total"])
        threshold = self.s.threshold_fraction * t1
        if int(run["trades"]) < self.s.min_trades or total < threshold or float(run["largest"]) >= t1:
            return []
        levels = sorted(self.whale.severity_multiples.items(), key=lambda kv: kv[1])
        reached = [level for level, m in levels if total >= m * t1]
        return [
            {
                "alert_id": alert_id(MODULE_ID, chunk.exchange, chunk.symbol, int(run["first_id"])),
                "detector": MODULE_ID,
                "kind": KIND,
                "exchange": chunk.exchange,
                "symbol": chunk.symbol,
                "ts_event": int(run["last_ts"]),
                "window_start": None,
                "window_end": None,
                "severity": reached[-1] if reached else levels[0][0],
                "value": total,
                "threshold": threshold,
                "evidence": {
                    "trades": int(run["trades"]),
                    "side": run["side"],
                    "first_ts": int(run["first_ts"]),
                    "last_ts": int(run["last_ts"]),
                    "vwap": float(run["pq"]) / float(run["qty"]),
                    "largest_usd": float(run["largest"]),
                    "notional_usd": total,
                },
                "event_ids": list(run["ids"]),
                **chunk.row_stamps(closing),
                "ts_written": None,
            }
        ]
