"""MOD-008 whale-impact: the whale's instrument's price ``h`` seconds after each whale.

Exact rules: docs/DETECTORS.md, "MOD-008". Whales are the MOD-001 and MOD-007 alerts of the same key and
micro-batch (``consumes``); the price at ``t + h`` is ``PriceAsOf``'s (pipeline/detectors/asof.py), kept
in the key's state, so a horizon is evaluated at the same event however the input is cut.

State of a key (besides the clock kept by ``WindowedDetector``): ``asof`` (the ``PriceAsOf`` state) and
``pending``: the whales with horizons not evaluated yet, in the order they became known, each
``{alert_id, detector, side, t, p0, ids, done, fired}`` (``done``: horizons evaluated so far).
"""

from __future__ import annotations

import json
from itertools import pairwise
from typing import TYPE_CHECKING, Any, ClassVar, Final, Self

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import Field, model_validator

from core.frozen import Frozen
from pipeline.alerts import alert_id
from pipeline.detectors.asof import PENDING, PriceAsOf
from pipeline.detectors.base import ARRIVAL, DetectorInput, DetectorOutput, Key
from pipeline.detectors.basis import severity_for
from pipeline.detectors.windowed import KeyChunk, WindowedDetector
from pipeline.tables import TableDef

if TYPE_CHECKING:
    from pipeline.config import Config

MODULE_ID: Final = "MOD-008"
KIND: Final = "price_impact"
WHALE_PRICE: Final = {"MOD-001": "price", "MOD-007": "vwap"}
"""The evidence field holding each consumed module's whale price ``p0``."""

WHALE_IMPACT_TABLE: Final = TableDef(
    name="whale_impact",
    schema=pa.schema(
        [
            pa.field("exchange", pa.string(), nullable=False),
            pa.field("symbol", pa.string(), nullable=False),
            pa.field("whale_alert_id", pa.string(), nullable=False),
            pa.field("whale_detector", pa.string(), nullable=False),
            pa.field("side", pa.string(), nullable=False),
            pa.field("horizon_s", pa.int64(), nullable=False),
            pa.field("ts_whale", pa.int64(), nullable=False),
            pa.field("ts_horizon", pa.int64(), nullable=False),
            pa.field("p0", pa.float64(), nullable=False),
            pa.field("price", pa.float64(), nullable=False),
            pa.field("impact_bps", pa.float64(), nullable=False),
        ]
    ),
    key=("whale_alert_id", "horizon_s"),
    description="MOD-008: per whale (MOD-001 and MOD-007 alert) and horizon, the price then and the "
    "signed impact in bps",
)


class WhaleImpactSettings(Frozen):
    """MOD-008: the signed price move ``horizons_s`` after each whale, alerting from ``threshold_bps``."""

    horizons_s: tuple[int, ...] = (60, 300)
    threshold_bps: float = Field(20.0, gt=0)

    @model_validator(mode="after")
    def _horizons_increase(self) -> Self:
        h = self.horizons_s
        if not h or h[0] <= 0 or any(b <= a for a, b in pairwise(h)):
            raise ValueError(f"horizons_s {list(h)} must be positive and strictly increasing")
        return self


class WhaleImpactDetector(WindowedDetector[WhaleImpactSettings]):
    """MOD-008: one ``whale_impact`` row per whale and horizon; an alert at the first horizon that moved
    ``threshold_bps`` either way."""

    module_id: ClassVar[str] = MODULE_ID
    name: ClassVar[str] = "whale-impact"
    description: ClassVar[str] = "the price moved N bps the whale's way (or against) h seconds later"
    consumes: ClassVar[tuple[str, ...]] = tuple(WHALE_PRICE)
    settings_model: ClassVar[type[Frozen]] = WhaleImpactSettings
    metric_tables: ClassVar[tuple[TableDef, ...]] = (WHALE_IMPACT_TABLE,)

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.horizons = [h * 1_000_000 for h in self.settings.horizons_s]
        self.retention = self.horizons[-1] + self.delay_us
        self._whales: dict[Key, pd.DataFrame] = {}

    def new_state(self) -> dict[str, Any]:
        """A key that has seen nothing."""
        return {**super().new_state(), "asof": {}, "pending": []}

    def detect(self, frames: DetectorInput) -> DetectorOutput:
        """The batch's whales by key (for ``process_chunk``), then every key of the batch."""
        whales = [a for a in frames.upstream.values() if len(a)]
        merged = pd.concat(whales, ignore_index=True) if whales else pd.DataFrame()
        self._whales = (
            {(str(k[0]), str(k[1])): g for k, g in merged.groupby(["exchange", "symbol"], sort=False)}
            if len(merged)
            else {}
        )
        try:
            return super().detect(frames)
        finally:
            self._whales = {}

    def process_chunk(
        self, chunk: KeyChunk, state: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], dict[str, pd.DataFrame]]:
        """Feed the key's prices, add the chunk's whales, evaluate every horizon the clock passed."""
        asof = PriceAsOf(self.retention, state["asof"])
        chunk_clock = asof.clock
        asof.feed(chunk.ts, *chunk.price_feed())
        whales: list[tuple[dict[str, Any], int, int]] = [(w, -1, chunk_clock) for w in state["pending"]]
        found = self._whales.get((chunk.exchange, chunk.symbol))
        if found is not None:
            arrivals = np.empty(len(chunk), dtype=np.int64)
            arrivals[chunk.is_trade] = chunk.trades[ARRIVAL].to_numpy(dtype=np.int64)
            arrivals[~chunk.is_trade] = chunk.quotes[ARRIVAL].to_numpy(dtype=np.int64)
            found = found.assign(known_row=np.searchsorted(arrivals, found[ARRIVAL].to_numpy(dtype=np.int64)))
            for a in found.sort_values(["known_row", "alert_id"]).itertuples(index=False):
                row = int(a.known_row)
                before = int(chunk.running_max[row - 1]) if row > 0 else chunk_clock
                whales.append((self._whale(a), row, before))
        alerts: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        pending = []
        for whale, known_row, asked_at in whales:
            todo = self.horizons[whale["done"] :]
            xs = np.asarray([whale["t"] + h for h in todo], dtype=np.int64)
            prices, at = asof.resolve(xs, asked_at)
            for h, x, price, row in zip(todo, xs.tolist(), prices.tolist(), at.tolist(), strict=True):
                if row == PENDING:
                    break
                whale["done"] += 1
                if np.isnan(price):
                    continue
                evaluated = max(int(row), known_row)
                alerts += self._evaluate(chunk, whale, h, x, price, evaluated, rows)
            if whale["done"] < len(self.horizons):
                pending.append(whale)
        state["asof"] = asof.to_state()
        state["pending"] = pending
        if not rows:
            return alerts, {}
        return alerts, {WHALE_IMPACT_TABLE.name: pd.DataFrame(rows, columns=WHALE_IMPACT_TABLE.schema.names)}

    @staticmethod
    def _whale(alert: Any) -> dict[str, Any]:
        """A consumed alert as a pending whale (JSON data)."""
        evidence = json.loads(alert.evidence)
        return {
            "alert_id": str(alert.alert_id),
            "detector": str(alert.detector),
            "side": str(evidence["side"]),
            "t": int(alert.ts_event),
            "p0": float(evidence[WHALE_PRICE[str(alert.detector)]]),
            "ids": [str(i) for i in alert.event_ids],
            "done": 0,
            "fired": False,
        }

    def _evaluate(
        self,
        chunk: KeyChunk,
        whale: dict[str, Any],
        h: int,
        x: int,
        price: float,
        row: int,
        rows: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        """The ``whale_impact`` row of one horizon (appended to ``rows``) and the whale's alert if this is
        its first horizon past the threshold."""
        direction = 1.0 if whale["side"] == "buy" else -1.0
        p0 = float(whale["p0"])
        impact = direction * (price - p0) / p0 * 1e4
        horizon_s = h // 1_000_000
        rows.append(
            {
                "exchange": chunk.exchange,
                "symbol": chunk.symbol,
                "whale_alert_id": whale["alert_id"],
                "whale_detector": whale["detector"],
                "side": whale["side"],
                "horizon_s": horizon_s,
                "ts_whale": whale["t"],
                "ts_horizon": x,
                "p0": p0,
                "price": price,
                "impact_bps": impact,
            }
        )
        threshold = self.settings.threshold_bps
        if whale["fired"] or abs(impact) < threshold:
            return []
        whale["fired"] = True
        return [
            {
                "alert_id": alert_id(MODULE_ID, chunk.exchange, chunk.symbol, whale["alert_id"]),
                "detector": MODULE_ID,
                "kind": KIND,
                "exchange": chunk.exchange,
                "symbol": chunk.symbol,
                "ts_event": x,
                "window_start": None,
                "window_end": None,
                "severity": severity_for(impact, threshold),
                "value": impact,
                "threshold": threshold,
                "evidence": {
                    "horizon_s": horizon_s,
                    "p0": p0,
                    "price": price,
                    "side": whale["side"],
                    "whale_alert_id": whale["alert_id"],
                    "whale_detector": whale["detector"],
                },
                "event_ids": list(whale["ids"]),
                **chunk.row_stamps(row),
                "ts_written": None,
            }
        ]
