"""MOD-003 spread-calculator: per-window spread metrics, blow-out and crossed-book alerts.

Exact rules: docs/DETECTORS.md, "MOD-003". Counted quotes are the valid quotes the sequencer did not
mark ``late``; crossed (``bid > ask``) and locked (``bid == ask``) quotes carry no spread. Counting
them as data-quality events (``CROSSED_BOOK``, ``LOCKED_BOOK``) is MOD-004's job; this module raises
the ``crossed_book`` alert for a closed window holding crossed quotes.

State of a key (besides the clock kept by ``WindowedDetector``): ``open`` the windows still open as
``{start: {sum, n, min, max, last, crossed, crossed_ids}}`` and ``history`` the mean
spreads of the last ``baseline_windows`` evaluated windows that had a spread.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any, ClassVar, Final

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import Field

from core.events import event_id
from core.frozen import Frozen
from pipeline.alerts import alert_id
from pipeline.detectors.windowed import KeyChunk, WindowedDetector, WindowedSettings, window_metrics_table
from pipeline.detectors.windows import (
    MAX_EVENT_IDS,
    by_window,
    closing_bound,
    fold_sum,
    window_starts,
)
from pipeline.tables import TableDef

if TYPE_CHECKING:
    from pipeline.config import Config

MODULE_ID: Final = "MOD-003"
BLOWOUT: Final = "spread_blowout"
CROSSED: Final = "crossed_book"

SPREAD_METRICS_TABLE: Final = window_metrics_table(
    "spread_metrics",
    "MOD-003: spread statistics per key and closed window with at least one spread",
    [
        pa.field("min_bps", pa.float64(), nullable=False),
        pa.field("mean_bps", pa.float64(), nullable=False),
        pa.field("max_bps", pa.float64(), nullable=False),
        pa.field("last_bps", pa.float64(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
    ],
)


def spread_bps(bid: Any, ask: Any) -> Any:
    """``(ask - bid) / ((ask + bid) / 2) * 1e4``, element-wise."""
    return (ask - bid) / ((ask + bid) / 2.0) * 1e4


class SpreadSettings(WindowedSettings):
    """MOD-003: per-window spread metrics; alerts on a blow-out against the trailing median."""

    median_multiple: float = Field(3.0, gt=1)
    max_spread_bps: float = Field(100.0, gt=0)


class SpreadDetector(WindowedDetector[SpreadSettings]):
    """MOD-003: spread metrics per closed window; ``spread_blowout`` and ``crossed_book`` alerts."""

    module_id: ClassVar[str] = MODULE_ID
    name: ClassVar[str] = "spread-calculator"
    description: ClassVar[str] = (
        "per-window spread metrics; blow-outs against the trailing median; crossed books"
    )
    settings_model: ClassVar[type[Frozen]] = SpreadSettings
    metric_tables: ClassVar[tuple[TableDef, ...]] = (SPREAD_METRICS_TABLE,)

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.s = self.settings
        self.width = self.s.window_seconds * 1_000_000

    def process_chunk(
        self, chunk: KeyChunk, state: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], dict[str, pd.DataFrame]]:
        """Add the chunk's counted quotes to their windows, then evaluate the windows it closed."""
        state.setdefault("open", {})
        state.setdefault("history", [])
        quotes = chunk.quotes
        if len(quotes):
            rows = np.flatnonzero(~quotes["late"].to_numpy(dtype=bool))
            if len(rows):
                self._accumulate(chunk, rows, state)
        return self._close(chunk, state)

    def _accumulate(self, chunk: KeyChunk, rows: Any, state: dict[str, Any]) -> None:
        """``rows``: positions of the counted (non-late) quotes in ``chunk.quotes``."""
        quotes = chunk.quotes
        wins = window_starts(quotes["ts_event"].to_numpy(dtype=np.int64)[rows], self.width)
        crossed = quotes["crossed"].to_numpy(dtype=bool)[rows]
        has_spread = ~crossed & ~quotes["locked"].to_numpy(dtype=bool)[rows]
        bid = quotes["bid_px"].to_numpy(dtype=np.float64)[rows]
        spreads = spread_bps(bid, quotes["ask_px"].to_numpy(dtype=np.float64)[rows])
        update_ids = quotes["update_id"].to_numpy()[rows]

        def name(pos: int) -> str:
            return event_id("quote", chunk.exchange, chunk.symbol, int(update_ids[pos]))

        for start, part in by_window(wins):
            w = state["open"].setdefault(
                str(start),
                {
                    "sum": 0.0,
                    "n": 0,
                    "min": None,
                    "max": None,
                    "last": None,
                    "crossed": 0,
                    "crossed_ids": [],
                },
            )
            sp = part[has_spread[part]]
            if len(sp):
                values = spreads[sp]
                w["sum"] = fold_sum(float(w["sum"]), values)
                w["n"] = int(w["n"]) + len(sp)
                lo, hi = float(values.min()), float(values.max())
                w["min"] = lo if w["min"] is None else min(float(w["min"]), lo)
                w["max"] = hi if w["max"] is None else max(float(w["max"]), hi)
                w["last"] = float(values[-1])
            cr = part[crossed[part]]
            w["crossed"] = int(w["crossed"]) + len(cr)
            room = MAX_EVENT_IDS - len(w["crossed_ids"])
            w["crossed_ids"] = w["crossed_ids"] + [name(int(i)) for i in cr[:room]]

    def _close(
        self, chunk: KeyChunk, state: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], dict[str, pd.DataFrame]]:
        bound = closing_bound(chunk.max_ts, self.delay_us, self.width)
        closing = sorted(s for s in map(int, state["open"]) if s < bound)
        alerts: list[dict[str, Any]] = []
        metrics: list[dict[str, Any]] = []
        history = [float(v) for v in state["history"]]
        for start in closing:
            w = state["open"].pop(str(start))
            end = start + self.width
            if w["crossed"]:
                alerts.append(self._crossed_alert(chunk, start, w))
            if not w["n"]:
                continue  # only crossed or locked quotes: no spread, no metrics row, not in the baseline
            mean = float(w["sum"]) / int(w["n"])
            metrics.append(
                {
                    "exchange": chunk.exchange,
                    "symbol": chunk.symbol,
                    "window_start": start,
                    "window_end": end,
                    "min_bps": float(w["min"]),
                    "mean_bps": mean,
                    "max_bps": float(w["max"]),
                    "last_bps": float(w["last"]),
                    "count": int(w["n"]),
                }
            )
            alert = self._blowout_alert(chunk, start, w, mean, history)
            if alert is not None:
                alerts.append(alert)
            history = [*history, mean][-self.s.baseline_windows :]
        state["history"] = history
        if not metrics:
            return alerts, {}
        frame = pd.DataFrame(metrics, columns=SPREAD_METRICS_TABLE.schema.names)
        return alerts, {"spread_metrics": frame}

    def _blowout_alert(
        self, chunk: KeyChunk, start: int, w: dict[str, Any], mean: float, history: list[float]
    ) -> dict[str, Any] | None:
        crossed_bounds = []
        if mean > self.s.max_spread_bps:
            crossed_bounds.append(self.s.max_spread_bps)
        median = statistics.median(history) if history else None
        if median is not None and len(history) >= self.s.min_history:
            relative = self.s.median_multiple * median
            if mean > relative:
                crossed_bounds.append(relative)
        if not crossed_bounds:
            return None
        threshold = min(crossed_bounds)
        evidence = {
            "mean": mean,
            "median": median,
            "history": len(history),
            "count": int(w["n"]),
            "max_spread_bps": self.s.max_spread_bps,
        }
        return self._alert(
            chunk,
            start,
            BLOWOUT,
            f"spread:{start}",
            mean,
            threshold,
            "high" if mean > 2 * threshold else "medium",
            evidence,
            [],
        )

    def _crossed_alert(self, chunk: KeyChunk, start: int, w: dict[str, Any]) -> dict[str, Any]:
        evidence = {"crossed": int(w["crossed"])}
        return self._alert(
            chunk,
            start,
            CROSSED,
            f"crossed:{start}",
            float(w["crossed"]),
            0.0,
            "high",
            evidence,
            list(w["crossed_ids"]),
        )

    def _alert(
        self,
        chunk: KeyChunk,
        start: int,
        kind: str,
        key: str,
        value: float,
        threshold: float,
        severity: str,
        evidence: dict[str, Any],
        event_ids: list[str],
    ) -> dict[str, Any]:
        end = start + self.width
        return {
            "alert_id": alert_id(MODULE_ID, chunk.exchange, chunk.symbol, key),
            "detector": MODULE_ID,
            "kind": kind,
            "exchange": chunk.exchange,
            "symbol": chunk.symbol,
            "ts_event": end,
            "window_start": start,
            "window_end": end,
            "severity": severity,
            "value": value,
            "threshold": threshold,
            "evidence": evidence,
            "event_ids": event_ids,
            **chunk.closer_stamps(end, self.delay_us),
            "ts_written": None,
        }
