"""MOD-001 whale-detector: one trade whose USD notional reaches its symbol's threshold.

Semantics: docs/DETECTORS.md "MOD-001". Stateless: duplicates and notional come from the sequencer.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from core.events import EventKind, event_id
from pipeline.alerts import alert_id
from pipeline.detectors.base import BaseDetector, DetectorInput, DetectorOutput, alerts_frame, opt_int


class WhaleDetector(BaseDetector):
    """Fires once per valid, non-duplicate trade with ``notional_usd >= threshold``."""

    module_id: ClassVar[str] = "MOD-001"
    name: ClassVar[str] = "whale-detector"
    inputs: ClassVar[tuple[EventKind, ...]] = ("trade",)

    def detect(self, frames: DetectorInput) -> DetectorOutput:
        """Whale alerts of one batch."""
        settings = self.config.whale
        trades = frames.trades
        if trades.empty:
            return DetectorOutput()
        threshold = (
            trades["symbol"]
            .map(lambda s: settings.thresholds_usd.get(s, settings.default_threshold_usd))
            .to_numpy(dtype=np.float64)
        )
        notional = trades["notional_usd"].to_numpy(dtype=np.float64)
        fire = ~trades["duplicate"].to_numpy(dtype=bool) & (notional >= threshold)  # NaN never fires
        if not fire.any():
            return DetectorOutput()
        hits = trades[fire]
        levels = sorted(settings.severity_multiples.items(), key=lambda kv: kv[1])
        rows = []
        for (_, t), thr in zip(hits.iterrows(), threshold[fire], strict=True):
            value = float(t["notional_usd"])
            severity = [lvl for lvl, m in levels if value >= m * thr][-1]
            trade_id = int(t["trade_id"])
            rows.append(
                {
                    "alert_id": alert_id(self.module_id, t["exchange"], t["symbol"], trade_id),
                    "detector": self.module_id,
                    "kind": "whale_trade",
                    "exchange": t["exchange"],
                    "symbol": t["symbol"],
                    "ts_event": int(t["ts_event"]),
                    "window_start": None,
                    "window_end": None,
                    "severity": severity,
                    "value": value,
                    "threshold": float(thr),
                    "evidence": {
                        "price": float(t["price"]),
                        "qty": float(t["qty"]),
                        "side": t["side"],
                        "notional_usd": value,
                        "quote_currency": t["quote_currency"],
                        "trade_id": trade_id,
                        "multiple": value / float(thr),
                    },
                    "event_ids": [event_id("trade", t["exchange"], t["symbol"], trade_id)],
                    "ts_sent": opt_int(t["ts_sent"]),
                    "ts_ingest": opt_int(t["ts_ingest"]),
                    "ts_written": None,
                }
            )
        return DetectorOutput(alerts=alerts_frame(rows))
