"""MOD-004 data-quality: per key, window and reason counts of every DQ event (docs/DETECTORS.md).

The record rules themselves run in ``pipeline.parse`` (rejected records reach this detector as the
batch's quarantine rows); the stream rules' facts come from the sequencer. This module only counts:
rows ``(exchange, symbol, window_start, reason, count)`` of the ``dq_metrics`` table, additive across
micro-batches.
"""

from __future__ import annotations

from typing import ClassVar, Final

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import Field

from core.events import EventKind
from core.frozen import Frozen
from pipeline.detectors.base import BaseDetector, DetectorInput, DetectorOutput, empty_frame
from pipeline.tables import TableDef

DQ_METRICS_SCHEMA: Final = pa.schema(
    [
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("window_start", pa.int64(), nullable=True),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
    ]
)
DQ_METRICS: Final = TableDef(
    name="dq_metrics",
    schema=DQ_METRICS_SCHEMA,
    key=("exchange", "symbol", "window_start", "reason"),
    additive=True,
    description="MOD-004: data-quality event counts per key, window and reason (null window: quarantine)",
)

_TRADE_RULES: Final = (
    ("duplicate", "DUPLICATE_ID"),
    ("late", "LATE_EVENT"),
    ("price_band", "PRICE_BAND"),
    ("stale", "STALE_FEED"),
)
_QUOTE_RULES: Final = (
    ("late", "LATE_EVENT"),
    ("stale", "STALE_FEED"),
    ("crossed", "CROSSED_BOOK"),
    ("locked", "LOCKED_BOOK"),
)


class DataQualitySettings(Frozen):
    """MOD-004: rule thresholds; every rule has a reason code (docs/DETECTORS.md).

    The sequencer applies ``price_band_pct`` and ``stale_feed_seconds`` for every module, whether or
    not MOD-004 is enabled, so that all modules agree on which events are flagged.
    """

    price_band_pct: float = Field(20.0, gt=0)
    stale_feed_seconds: int = Field(30, gt=0)
    window_seconds: int = Field(60, gt=0)


class DataQualityDetector(BaseDetector[DataQualitySettings]):
    """Counts quarantined records and stream-rule occurrences per key, window and reason."""

    module_id: ClassVar[str] = "MOD-004"
    name: ClassVar[str] = "data-quality"
    description: ClassVar[str] = (
        "record rules (quarantine) and stream rules (duplicates, gaps, late, stale, price band)"
    )
    inputs: ClassVar[tuple[EventKind, ...]] = ("trade", "quote")
    settings_model: ClassVar[type[Frozen]] = DataQualitySettings
    metric_tables: ClassVar[tuple[TableDef, ...]] = (DQ_METRICS,)

    def detect(self, frames: DetectorInput) -> DetectorOutput:
        """The ``dq_metrics`` rows of one batch."""
        width = self.settings.window_seconds * 1_000_000
        parts: list[pd.DataFrame] = []
        for frame, rules in ((frames.trades, _TRADE_RULES), (frames.quotes, _QUOTE_RULES)):
            if frame.empty:
                continue
            for column, reason in rules:
                hit = frame[column].to_numpy(dtype=bool)
                if hit.any():
                    parts.append(_counts(frame, hit, reason, np.ones(int(hit.sum()), dtype=np.int64), width))
        if not frames.trades.empty:
            gap = frames.trades["id_gap"].to_numpy(dtype=np.int64)
            if (hit := gap > 0).any():
                parts.append(_counts(frames.trades, hit, "TRADE_ID_GAP", gap[hit], width))
        q = frames.quarantine
        if not q.empty:
            parts.append(
                pd.DataFrame(
                    {
                        "exchange": q["exchange"].fillna("").astype(str).to_numpy(),
                        "symbol": q["symbol"].fillna("").astype(str).to_numpy(),
                        "window_start": _window(q["ts_event"], width),
                        "reason": q["reason"].astype(str).to_numpy(),
                        "count": np.ones(len(q), dtype=np.int64),
                    }
                )
            )
        parts = [p for p in parts if len(p)]
        if not parts:
            return DetectorOutput(metrics={"dq_metrics": empty_frame(DQ_METRICS_SCHEMA)})
        rows = pd.concat(parts, ignore_index=True)
        grouped = (
            rows.groupby(["exchange", "symbol", "window_start", "reason"], dropna=False, sort=True)["count"]
            .sum()
            .reset_index()
        )
        grouped["window_start"] = grouped["window_start"].astype("Int64")
        return DetectorOutput(metrics={"dq_metrics": grouped[DQ_METRICS_SCHEMA.names]})


def _window(ts: pd.Series, width: int) -> pd.Series:
    values = pd.array(ts, dtype="Int64")
    return pd.Series((values // width) * width, dtype="Int64")


def _counts(frame: pd.DataFrame, hit: np.ndarray, reason: str, count: np.ndarray, width: int) -> pd.DataFrame:
    """Rows of the events where ``hit`` holds (only the three columns needed are copied: this runs
    once per rule and batch, and most batches hit nothing)."""
    return pd.DataFrame(
        {
            "exchange": frame["exchange"].to_numpy()[hit].astype(str),
            "symbol": frame["symbol"].to_numpy()[hit].astype(str),
            "window_start": _window(frame["ts_event"][hit], width).to_numpy(),
            "reason": reason,
            "count": count,
        }
    )
