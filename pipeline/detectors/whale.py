"""MOD-001 whale-detector: one trade whose USD notional reaches its symbol's threshold.

Semantics: docs/DETECTORS.md "MOD-001". Stateless: duplicates and notional come from the sequencer.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from core.events import EventKind, event_id
from core.frozen import Frozen
from pipeline.alerts import alert_id
from pipeline.detectors.base import BaseDetector, DetectorInput, DetectorOutput, alerts_frame, opt_int


class WhaleSettings(Frozen):
    """MOD-001: one trade whose USD notional reaches the symbol's threshold."""

    default_threshold_usd: float = Field(1_000_000.0, gt=0)
    thresholds_usd: dict[str, float] = Field(default_factory=dict)
    severity_multiples: dict[str, float] = Field(
        default_factory=lambda: {"low": 1.0, "medium": 2.0, "high": 5.0, "critical": 10.0}
    )

    @field_validator("severity_multiples")
    @classmethod
    def _severity_starts_at_one(cls, v: dict[str, float]) -> dict[str, float]:
        if not v or min(v.values()) != 1.0:
            raise ValueError("the lowest severity multiple must be 1.0 (the threshold itself)")
        return v

    def threshold(self, symbol: str) -> float:
        """The USD threshold of one symbol (``default_threshold_usd`` when it has none)."""
        return self.thresholds_usd.get(symbol, self.default_threshold_usd)


class WhaleDetector(BaseDetector[WhaleSettings]):
    """Fires once per valid, non-duplicate trade with ``notional_usd >= threshold``."""

    module_id: ClassVar[str] = "MOD-001"
    name: ClassVar[str] = "whale-detector"
    description: ClassVar[str] = "one trade's USD notional reaches the symbol's threshold"
    inputs: ClassVar[tuple[EventKind, ...]] = ("trade",)
    settings_model: ClassVar[type[Frozen]] = WhaleSettings

    def detect(self, frames: DetectorInput) -> DetectorOutput:
        """Whale alerts of one batch."""
        settings = self.settings
        trades = frames.trades
        if trades.empty:
            return DetectorOutput()
        # one look-up per symbol, not per trade
        codes, symbols = pd.factorize(trades["symbol"], use_na_sentinel=False)
        threshold = np.array([settings.threshold(s) for s in symbols], dtype=np.float64)[codes]
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
                    "arrival": int(t["arrival"]),
                }
            )
        return DetectorOutput(alerts=alerts_frame(rows))
