"""MOD-009 momentum-burst: the price moved ``threshold_bps`` against its value ``lookback_s`` earlier, on
at least ``min_notional_usd`` of counted trades over that span.

Exact rules: docs/DETECTORS.md, "MOD-009". ``p_ref`` is ``PriceAsOf``'s (pipeline/detectors/asof.py).

``N`` (the notional of counted trades with ``ts_event`` in ``(t - lookback, t]`` that arrived so far) is
a difference of running sums: ``cum`` is the left-to-right fold of every counted notional of the key, so
its values are the same however the input is cut. Trades before the first whose clock exceeds ``t -
lookback`` cannot be in the span (their time is at most their clock); those after it are, unless they
arrived out of time order, and only rows near such trades are summed one by one.

State of a key (besides the clock kept by ``WindowedDetector``): ``asof`` (the ``PriceAsOf`` state),
``cum`` and ``count`` (running notional and number of counted trades), ``recent`` (the counted trades a
later trade's span may still hold, as ``[ts, clock, notional, cum after it, count after it]``), ``base``
(``[cum, count]`` just before the first of them) and ``burst`` (the open burst's direction, 0 when none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Final

import numpy as np
import pandas as pd
from pydantic import Field

from core.events import event_id
from core.frozen import Frozen
from pipeline.alerts import alert_id
from pipeline.detectors.asof import PriceAsOf
from pipeline.detectors.basis import severity_for
from pipeline.detectors.windowed import KeyChunk, WindowedDetector, counted_trades
from pipeline.detectors.windows import F64, I64

if TYPE_CHECKING:
    from pipeline.config import Config

MODULE_ID: Final = "MOD-009"
KIND: Final = "momentum_burst"


class MomentumSettings(Frozen):
    """MOD-009: a move of ``threshold_bps`` against the price ``lookback_s`` earlier, on volume."""

    lookback_s: int = Field(60, gt=0)
    threshold_bps: float = Field(50.0, gt=0)
    min_notional_usd: float = Field(2_000_000.0, ge=0)


class MomentumDetector(WindowedDetector[MomentumSettings]):
    """MOD-009: one alert at the first trade of each burst."""

    module_id: ClassVar[str] = MODULE_ID
    name: ClassVar[str] = "momentum-burst"
    description: ClassVar[str] = "the price moved N bps against its value a minute earlier, on real volume"
    settings_model: ClassVar[type[Frozen]] = MomentumSettings

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.lookback = self.settings.lookback_s * 1_000_000
        self.retention = self.lookback + self.delay_us

    def new_state(self) -> dict[str, Any]:
        """A key that has seen nothing."""
        return {
            **super().new_state(),
            "asof": {},
            "cum": 0.0,
            "count": 0,
            "base": [0.0, 0],
            "recent": [],
            "burst": 0,
        }

    def process_chunk(
        self, chunk: KeyChunk, state: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], dict[str, pd.DataFrame]]:
        """``move``, ``N`` and ``n`` at every counted trade of the chunk, then the bursts they start."""
        asof = PriceAsOf(self.retention, state["asof"])
        asof.feed(chunk.ts, *chunk.price_feed())
        state["asof"] = asof.to_state()
        trades = chunk.trades
        rows = np.flatnonzero(counted_trades(trades)) if len(trades) else np.empty(0, np.int64)
        if not len(rows):
            return [], {}
        pos = np.flatnonzero(chunk.is_trade)[rows]
        ts = chunk.ts[pos]
        clock = chunk.running_max[pos]
        price = trades["price"].to_numpy(dtype=np.float64)[rows]
        p_ref, _ = asof.resolve(ts - self.lookback, clock)
        notional, count = self._spans(state, ts, clock, trades["notional_usd"].to_numpy(np.float64)[rows])
        move = (price - p_ref) / p_ref * 1e4
        alerts = []
        for i in self._starts(state, move, notional):
            row = int(rows[i])
            tid = int(trades["trade_id"].iat[row])
            value = float(move[i])
            alerts.append(
                {
                    "alert_id": alert_id(MODULE_ID, chunk.exchange, chunk.symbol, tid),
                    "detector": MODULE_ID,
                    "kind": KIND,
                    "exchange": chunk.exchange,
                    "symbol": chunk.symbol,
                    "ts_event": int(ts[i]),
                    "window_start": None,
                    "window_end": None,
                    "severity": severity_for(value, self.settings.threshold_bps),
                    "value": value,
                    "threshold": self.settings.threshold_bps,
                    "evidence": {
                        "p_ref": float(p_ref[i]),
                        "price": float(price[i]),
                        "notional_usd": float(notional[i]),
                        "trades": int(count[i]),
                        "direction": "up" if value > 0 else "down",
                    },
                    "event_ids": [event_id("trade", chunk.exchange, chunk.symbol, tid)],
                    **chunk.row_stamps(int(pos[i])),
                    "ts_written": None,
                }
            )
        return alerts, {}

    def _spans(self, state: dict[str, Any], ts: I64, clock: I64, notional: F64) -> tuple[F64, I64]:
        """``N`` and ``n`` of each of the chunk's counted trades (times ``ts``, clocks ``clock``); keeps
        ``recent``, ``base``, ``cum`` and ``count`` in ``state`` up to date."""
        recent = np.asarray(state["recent"], dtype=np.float64).reshape(-1, 5)
        k = len(recent)
        cum = np.cumsum(np.r_[float(state["cum"]), notional])[1:]
        cnt = int(state["count"]) + np.arange(1, len(ts) + 1, dtype=np.int64)
        all_ts = np.r_[recent[:, 0].astype(np.int64), ts]
        all_clock = np.r_[recent[:, 1].astype(np.int64), clock]
        all_v = np.r_[recent[:, 2], notional]
        # the folds before each entry: the state's base, then the fold after the previous entry
        base_cum, base_cnt = float(state["base"][0]), int(state["base"][1])
        before_cum = np.r_[base_cum, recent[:, 3], cum]
        before_cnt = np.r_[base_cnt, recent[:, 4].astype(np.int64), cnt]
        me = k + np.arange(len(ts))
        # entries before ``lo`` have a clock, so a time, at most t - lookback: outside the span
        lo = np.searchsorted(all_clock, ts - self.lookback, side="right")
        n_sum = cum - before_cum[lo]
        n_cnt = cnt - before_cnt[lo]
        # an entry out of time order (its clock passed its own time) may lie outside a span it sits in
        disorder = np.r_[0, np.cumsum(all_ts < all_clock)]
        for i in np.flatnonzero(disorder[me + 1] - disorder[lo] > 0).tolist():
            span = slice(int(lo[i]), int(me[i]) + 1)
            inside = (all_ts[span] > ts[i] - self.lookback) & (all_ts[span] <= ts[i])
            n_sum[i] = float(np.cumsum(all_v[span][inside])[-1])
            n_cnt[i] = int(inside.sum())
        # a later counted trade is not late, so its span starts after (clock - delay - lookback): entries
        # whose clock is not past that can never be in one again
        first = int(np.searchsorted(all_clock, int(all_clock[-1]) - self.delay_us - self.lookback, "right"))
        all_cum = np.r_[recent[:, 3], cum]
        all_cnt = np.r_[recent[:, 4].astype(np.int64), cnt]
        state["base"] = [float(before_cum[first]), int(before_cnt[first])]
        state["recent"] = [
            [int(a), int(b), float(c), float(d), int(e)]
            for a, b, c, d, e in zip(
                all_ts[first:],
                all_clock[first:],
                all_v[first:],
                all_cum[first:],
                all_cnt[first:],
                strict=True,
            )
        ]
        state["cum"] = float(cum[-1])
        state["count"] = int(cnt[-1])
        return n_sum, n_cnt

    def _starts(self, state: dict[str, Any], move: F64, notional: F64) -> list[int]:
        """The rows where a burst starts, walking the open/close rule from ``state["burst"]``."""
        s = self.settings
        known = ~np.isnan(move)
        size = np.abs(np.where(known, move, 0.0))
        can_start = known & (size >= s.threshold_bps) & (notional >= s.min_notional_usd)
        ends = {
            1: np.flatnonzero(known & ((size < s.threshold_bps / 2) | (move < 0))),
            -1: np.flatnonzero(known & ((size < s.threshold_bps / 2) | (move > 0))),
        }
        starts = np.flatnonzero(can_start)
        out: list[int] = []
        burst = int(state["burst"])
        i = 0
        while True:
            if burst:
                j = int(np.searchsorted(ends[burst], i))
                if j == len(ends[burst]):
                    break
                i = int(ends[burst][j])
                burst = 0
                if not can_start[i]:
                    i += 1
                    continue
            else:
                j = int(np.searchsorted(starts, i))
                if j == len(starts):
                    break
                i = int(starts[j])
            out.append(i)
            burst = 1 if move[i] > 0 else -1
            i += 1
        state["burst"] = burst
        return out
