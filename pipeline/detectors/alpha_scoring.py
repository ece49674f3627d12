"""MOD-011 alpha-scoring: sources whose past alerts were followed by price moves their way.

Exact rules: docs/DETECTORS.md, "MOD-011". Two halves under one module id:

- ``PriceStepFeed`` (instrument half, the module's ``CrossDetector.feed``): on each asset's reference
  instrument (``config/instruments.yaml`` ``reference``), the "price as of" steps of docs/DETECTORS.md:
  each event that raises the clock from ``c`` to ``c'`` fixes the price of every ``x`` in ``[c, c')``;
  a step is published (a feed row ``[c, c')`` with that price) when its price differs from the previous
  step's or when ``c'`` enters a new ``heartbeat_ms`` bucket, so the asset half knows prices up to the
  reference's clock within one heartbeat without a row per event.
- ``AlphaScoring`` (asset half, in ``pipeline.cross``): observations from the consumed modules' alerts
  (direction from ``pipeline.detectors.directions``), their forward returns per horizon, the
  ``alpha_scores`` rows, and ``follow_signal`` alerts with their ``signals`` rows.

State of a reference key (feed): ``clock``, ``price`` (last counted price), ``step`` [price, end] of the
last step. State of an asset: ``prices`` (published steps: ``start`` and ``price`` lists, pruned to
``retention_s``), ``known`` (the end of the last step: every price before it is final), ``seq`` (the
observations released so far) and ``sources`` (per source, its observations, at most ``4 * window``
resolved ones).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Final

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import Field, model_validator

from core.events import EventKind
from core.frozen import Frozen
from core.stats import t_sf
from pipeline.alerts import ALERT_SCHEMA, alert_id
from pipeline.detectors.base import (
    ARRIVAL,
    CrossDetector,
    DetectorOutput,
    Key,
    KeyedDetector,
    alerts_frame,
    empty_alerts,
)
from pipeline.detectors.directions import Stance, direction_of
from pipeline.detectors.windows import NO_TIME
from pipeline.tables import TableDef

if TYPE_CHECKING:
    from pipeline.config import Config

MODULE_ID: Final = "MOD-011"
KIND: Final = "follow_signal"
STEP: Final = "price_step"
"""Kind of a feed row: the reference's price over ``[window_start, window_end)`` is ``value``."""
US: Final = 1_000_000
_SEVERITY_STEPS: Final = ((4.0, "high"), (2.0, "medium"), (1.0, "low"))

ALPHA_SCORES_SCHEMA: Final = pa.schema([
    pa.field("asset", pa.string(), nullable=False),
    pa.field("detector", pa.string(), nullable=False),
    pa.field("exchange", pa.string(), nullable=False),
    pa.field("symbol", pa.string(), nullable=False),
    pa.field("horizon_s", pa.int64(), nullable=False),
    pa.field("alert_id", pa.string(), nullable=False),
    pa.field("decision_ts", pa.int64(), nullable=False),
    pa.field("ts_event", pa.int64(), nullable=False),
    pa.field("direction", pa.int64(), nullable=False),
    pa.field("forward_bps", pa.float64(), nullable=False),
    pa.field("count", pa.int64(), nullable=False),
    pa.field("mean_bps", pa.float64(), nullable=False),
    pa.field("std_bps", pa.float64(), nullable=True),
    pa.field("hit_rate", pa.float64(), nullable=False),
    pa.field("t_stat", pa.float64(), nullable=True),
])
ALPHA_SCORES: Final = TableDef(
    name="alpha_scores",
    schema=ALPHA_SCORES_SCHEMA,
    key=("detector", "exchange", "symbol", "horizon_s", "alert_id"),
    partition_by=("asset",),
    description="MOD-011: a source's score at one horizon each time an observation of it matures "
    "(ts_event = its decision time + horizon)",
)
SIGNALS_SCHEMA: Final = pa.schema([
    pa.field("alert_id", pa.string(), nullable=False),
    pa.field("asset", pa.string(), nullable=False),
    pa.field("detector", pa.string(), nullable=False),
    pa.field("exchange", pa.string(), nullable=False),
    pa.field("symbol", pa.string(), nullable=False),
    pa.field("source_alert_id", pa.string(), nullable=False),
    pa.field("ts_event", pa.int64(), nullable=False),
    pa.field("direction", pa.int64(), nullable=False),
    pa.field("horizon_s", pa.int64(), nullable=False),
    pa.field("price", pa.float64(), nullable=False),
    pa.field("count", pa.int64(), nullable=False),
    pa.field("mean_bps", pa.float64(), nullable=False),
    pa.field("hit_rate", pa.float64(), nullable=False),
    pa.field("t_stat", pa.float64(), nullable=True),
])
SIGNALS: Final = TableDef(
    name="signals",
    schema=SIGNALS_SCHEMA,
    key=("alert_id",),
    partition_by=("asset",),
    description="MOD-011: follow signals (ts_event = the decision time), what the backtest trades",
)


class AlphaSettings(Frozen):
    """MOD-011: horizons, score window, signal bounds, feed heartbeat and MOD-010's stances."""

    horizons_s: tuple[int, ...] = (60, 300, 900)
    window: int = Field(50, ge=2)
    signal_horizon_s: int = 300
    min_samples: int = Field(10, ge=2)
    min_edge_bps: float = 5.0
    min_hit_rate: float = Field(0.55, ge=0.0, le=1.0)
    false_positive_rate: float | None = Field(None, gt=0.0, lt=0.5)
    """How often a source without edge may be followed, per observation: a signal also needs the score's
    one-sided p-value (Student's t, ``count - 1`` degrees of freedom) at most this; ``None``: no such
    test (docs/DETECTORS.md, MOD-011 "Signal")."""
    heartbeat_ms: int = Field(1000, gt=0)
    retention_s: int = Field(3600, gt=0)
    """Prices older than this behind the asset's clock are dropped; an observation older than that when
    released is not scored."""
    onchain_stance: dict[str, dict[str, int]] = Field(default_factory=dict)
    """MOD-010: per asset, per kind (exchange_inflow, exchange_outflow, whale_transfer), +1, -1 or 0;
    unconfigured, the defaults of a volatile asset, or of a stablecoin (``config/tokens.yaml``)."""

    @model_validator(mode="after")
    def _consistent(self) -> AlphaSettings:
        if not self.horizons_s or any(h <= 0 for h in self.horizons_s):
            raise ValueError("horizons_s must be positive seconds, at least one")
        if self.signal_horizon_s not in self.horizons_s:
            raise ValueError(f"signal_horizon_s {self.signal_horizon_s} must be one of horizons_s "
                             f"{list(self.horizons_s)}")
        if self.retention_s <= max(self.horizons_s):
            raise ValueError(f"retention_s {self.retention_s} must exceed the longest horizon "
                             f"({max(self.horizons_s)} s)")
        return self


def severity_for(mean_bps: float, min_edge_bps: float) -> str:
    """``low`` from the edge bound, ``medium`` from 2x, ``high`` from 4x."""
    for multiple, level in _SEVERITY_STEPS:
        if mean_bps >= multiple * min_edge_bps:
            return level
    return "low"


def score(values: list[float]) -> dict[str, float | int | None]:
    """count, mean, sample std (n - 1), hit rate (share > 0) and t-statistic of forward returns.

    ``std`` and ``t`` are ``None`` below two values; ``t`` is also ``None`` when ``std`` is 0.
    """
    n = len(values)
    arr = np.asarray(values, dtype=np.float64)
    mean = float(arr.mean()) if n else 0.0
    std = float(arr.std(ddof=1)) if n >= 2 else None
    t = mean / (std / math.sqrt(n)) if std else None
    return {"count": n, "mean_bps": mean, "std_bps": std, "hit_rate": float((arr > 0).mean()) if n else 0.0,
            "t_stat": t}


def significant(stats: dict[str, float | int | None], false_positive_rate: float | None) -> bool:
    """Whether a score passes the false-positive bound: its t-statistic's one-sided p-value is at most
    the rate (always, without a bound; never with a null t-statistic)."""
    if false_positive_rate is None:
        return True
    t = stats["t_stat"]
    return t is not None and t_sf(float(t), int(stats["count"] or 0) - 1) <= false_positive_rate


class PriceStepFeed(KeyedDetector[AlphaSettings]):
    """MOD-011's instrument half: the reference instrument's "price as of" steps, thinned."""

    module_id: ClassVar[str] = MODULE_ID
    name: ClassVar[str] = "alpha-scoring-price-feed"
    description: ClassVar[str] = "per reference instrument, the price-as-of steps (changes and heartbeats)"
    inputs: ClassVar[tuple[EventKind, ...]] = ("trade", "quote")
    settings_model: ClassVar[type[Frozen]] = AlphaSettings

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.references = {(k[0], k[1]) for k in config.instruments.reference.values()}
        self.heartbeat_us = self.settings.heartbeat_ms * 1000

    def new_state(self) -> dict[str, Any]:
        """A key with no event yet."""
        return {"clock": NO_TIME, "price": None, "step": None}

    def process_key(
        self, key: Key, trades: pd.DataFrame, quotes: pd.DataFrame, state: Any
    ) -> tuple[DetectorOutput, Any]:
        """The published steps of one key's chunk (nothing for an instrument that is no reference)."""
        if key not in self.references:
            return DetectorOutput(), state
        def both(column: str) -> Any:
            return np.concatenate([trades[column].to_numpy(np.int64), quotes[column].to_numpy(np.int64)])

        arrival = both("arrival")
        order = np.argsort(arrival, kind="stable")
        clock = both("clock")[order]
        counted = np.concatenate([
            ~trades["late"].to_numpy(bool) & ~trades["duplicate"].to_numpy(bool), np.zeros(len(quotes), bool)
        ])[order]
        price = np.concatenate([trades["price"].to_numpy(np.float64), np.full(len(quotes), np.nan)])[order]
        arrival = arrival[order]
        n = len(clock)
        before = np.concatenate(([int(state["clock"])], clock[:-1]))
        last = np.maximum.accumulate(np.where(counted, np.arange(n), -1))
        prev = np.concatenate(([-1], last[:-1]))
        seed = np.nan if state["price"] is None else float(state["price"])
        price_before = np.where(prev >= 0, price[np.maximum(prev, 0)], seed)
        cand = np.flatnonzero((clock > before) & ~np.isnan(price_before))
        step = state["step"] or [np.nan, NO_TIME]
        c_price = price_before[cand]
        c_end = clock[cand]
        prev_price = np.concatenate(([float(step[0])], c_price[:-1]))
        prev_end = np.concatenate(([int(step[1])], c_end[:-1]))
        emit = cand[(c_price != prev_price) | (c_end // self.heartbeat_us != prev_end // self.heartbeat_us)]
        state["clock"] = int(clock[-1])
        if last[-1] >= 0:
            state["price"] = float(price[last[-1]])
        if len(cand):
            state["step"] = [float(c_price[-1]), int(c_end[-1])]
        return DetectorOutput(alerts=self._rows(key, before[emit], clock[emit], price_before[emit],
                                                arrival[emit])), state

    def _rows(self, key: Key, start: Any, end: Any, price: Any, arrival: Any) -> pd.DataFrame:
        n = len(end)
        if n == 0:
            return empty_alerts()
        exchange, symbol = key
        table = pa.table({
            "alert_id": [alert_id(MODULE_ID, exchange, symbol, f"step:{e}") for e in end.tolist()],
            "detector": [MODULE_ID] * n, "kind": [STEP] * n, "exchange": [exchange] * n,
            "symbol": [symbol] * n, "ts_event": end, "window_start": start, "window_end": end,
            "severity": ["low"] * n, "value": price, "threshold": np.zeros(n), "evidence": ["{}"] * n,
            "event_ids": pa.array([[]] * n, pa.list_(pa.string())),
            "ts_sent": pa.nulls(n, pa.int64()), "ts_ingest": pa.nulls(n, pa.int64()),
            "ts_written": pa.nulls(n, pa.int64()),
        }, schema=ALERT_SCHEMA)
        frame = table.to_pandas()
        frame[ARRIVAL] = pd.array(arrival, dtype="Int64")
        return frame


class AlphaScoring(CrossDetector[AlphaSettings]):
    """MOD-011: per asset, scores each source of directional alerts and emits follow signals."""

    module_id: ClassVar[str] = MODULE_ID
    name: ClassVar[str] = "alpha-scoring"
    description: ClassVar[str] = "a source whose past alerts the price followed emits follow signals"
    consumes: ClassVar[tuple[str, ...]] = ("MOD-001", "MOD-006", "MOD-007", "MOD-009", "MOD-010")
    settings_model: ClassVar[type[Frozen]] = AlphaSettings
    feed: ClassVar[type[KeyedDetector[Any]] | None] = PriceStepFeed
    metric_tables: ClassVar[tuple[TableDef, ...]] = (ALPHA_SCORES, SIGNALS)

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        s = self.settings
        self.reference = {asset: (k[0], k[1]) for asset, k in config.instruments.reference.items()}
        self.horizons = [h * US for h in s.horizons_s]
        self.signal_h = s.horizons_s.index(s.signal_horizon_s)
        self.retention = s.retention_s * US
        self.stance = Stance(s.onchain_stance, frozenset(config.tokens.stablecoins))

    def new_state(self) -> dict[str, Any]:
        """An asset with no price and no observation."""
        return {"prices": {"start": [], "price": []}, "known": NO_TIME, "clock": NO_TIME, "seq": 0,
                "sources": {}}

    def process_group(self, group: str, items: pd.DataFrame, state: Any) -> tuple[DetectorOutput, Any]:
        """Fold the released items in: prices extend what is known, alerts become observations; then
        resolve every observation the known prices allow."""
        ref = self.reference.get(group)
        own = (items["detector"] == MODULE_ID).to_numpy(bool)
        if ref is not None:
            steps = items[own & (items["exchange"] == ref[0]).to_numpy(bool)
                          & (items["symbol"] == ref[1]).to_numpy(bool)]
            if len(steps):
                state["prices"]["start"] += steps["window_start"].astype("int64").tolist()
                state["prices"]["price"] += steps["value"].astype("float64").tolist()
                state["known"] = max(int(state["known"]), int(steps["window_end"].max()))
        for item in items[~own].itertuples(index=False):
            self._observe(item, state)
        if len(items):
            state["clock"] = max(int(state["clock"]), int(items["clock"].max()))
        scores, signals, alerts = self._resolve(group, state)
        self._prune(state)
        return DetectorOutput(alerts=alerts_frame(alerts), metrics={
            ALPHA_SCORES.name: pd.DataFrame(scores, columns=ALPHA_SCORES_SCHEMA.names),
            SIGNALS.name: pd.DataFrame(signals, columns=SIGNALS_SCHEMA.names),
        }), state

    def _observe(self, item: Any, state: dict[str, Any]) -> None:
        direction = direction_of(item, self.stance)
        if direction.sign == 0:
            return
        t = int(item.decision_ts) if direction.decision_ts is None else direction.decision_ts
        state["seq"] += 1
        if t < int(item.clock) - self.retention:
            return  # older than the prices kept: never scored (docs/DETECTORS.md, MOD-011)
        source = "|".join((str(item.detector), direction.source or str(item.exchange), str(item.symbol)))
        state["sources"].setdefault(source, []).append({
            "seq": state["seq"], "id": str(item.alert_id), "t": t, "dir": direction.sign, "p0": None,
            "fwd": [None] * len(self.horizons), "done": False, "ts_sent": _opt(item.ts_sent),
            "ts_ingest": _opt(item.ts_ingest),
        })

    def _price_at(self, state: dict[str, Any], x: int) -> float | None:
        starts = state["prices"]["start"]
        i = int(np.searchsorted(np.asarray(starts, dtype=np.int64), x, side="right")) - 1
        return None if i < 0 else float(state["prices"]["price"][i])

    def _resolve(
        self, asset: str, state: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        known = int(state["known"])
        matured: list[tuple[str, dict[str, Any], int]] = []
        fresh: list[tuple[str, dict[str, Any]]] = []
        for source, observations in state["sources"].items():
            for obs in observations:
                if obs["done"]:
                    continue
                if obs["p0"] is None:
                    if known <= obs["t"]:
                        continue
                    p0 = self._price_at(state, obs["t"])
                    if p0 is None:
                        obs["done"] = True  # before the reference's first counted trade: no price
                        obs["fwd"] = []
                        continue
                    obs["p0"] = p0
                    fresh.append((source, obs))
                for i, h in enumerate(self.horizons):
                    if obs["fwd"][i] is None and known > obs["t"] + h:
                        p1 = self._price_at(state, obs["t"] + h)
                        assert p1 is not None  # a price at t implies one at any later time
                        obs["fwd"][i] = obs["dir"] * (p1 - obs["p0"]) / obs["p0"] * 1e4
                        matured.append((source, obs, i))
                obs["done"] = all(f is not None for f in obs["fwd"])
        scores = [self._score_row(asset, source, obs, i, state) for source, obs, i in matured]
        signals: list[dict[str, Any]] = []
        alerts: list[dict[str, Any]] = []
        for source, obs in fresh:
            self._signal(asset, source, obs, state, signals, alerts)
        return scores, signals, alerts

    def _window(self, observations: list[dict[str, Any]], i: int, keep: Any) -> dict[str, Any]:
        ready = (o for o in observations if len(o["fwd"]) > i and o["fwd"][i] is not None and keep(o))
        chosen = sorted(ready, key=lambda o: (o["t"], o["id"]))[-self.settings.window:]
        return score([o["fwd"][i] for o in chosen])

    def _score_row(
        self, asset: str, source: str, obs: dict[str, Any], i: int, state: dict[str, Any]
    ) -> dict[str, Any]:
        detector, exchange, symbol = source.split("|")
        stats = self._window(state["sources"][source], i,
                             lambda o: o["seq"] <= obs["seq"] and (o["t"], o["id"]) <= (obs["t"], obs["id"]))
        return {"asset": asset, "detector": detector, "exchange": exchange, "symbol": symbol,
                "horizon_s": self.settings.horizons_s[i], "alert_id": obs["id"], "decision_ts": obs["t"],
                "ts_event": obs["t"] + self.horizons[i], "direction": obs["dir"],
                "forward_bps": obs["fwd"][i], **stats}

    def _signal(
        self, asset: str, source: str, obs: dict[str, Any], state: dict[str, Any],
        signals: list[dict[str, Any]], alerts: list[dict[str, Any]],
    ) -> None:
        s = self.settings
        h = self.horizons[self.signal_h]
        stats = self._window(state["sources"][source], self.signal_h,
                             lambda o: o["seq"] < obs["seq"] and o["t"] + h < obs["t"])
        if not (int(stats["count"] or 0) >= s.min_samples
                and float(stats["mean_bps"] or 0.0) >= s.min_edge_bps
                and float(stats["hit_rate"] or 0.0) >= s.min_hit_rate
                and significant(stats, s.false_positive_rate)):
            return
        detector, exchange, symbol = source.split("|")
        sid = alert_id(MODULE_ID, exchange, symbol, f"follow:{obs['id']}")
        row = {"alert_id": sid, "asset": asset, "detector": detector, "exchange": exchange, "symbol": symbol,
               "source_alert_id": obs["id"], "ts_event": obs["t"], "direction": obs["dir"],
               "horizon_s": s.signal_horizon_s, "price": obs["p0"], "count": stats["count"],
               "mean_bps": stats["mean_bps"], "hit_rate": stats["hit_rate"], "t_stat": stats["t_stat"]}
        signals.append(row)
        alerts.append({
            "alert_id": sid, "detector": MODULE_ID, "kind": KIND, "exchange": exchange, "symbol": symbol,
            "ts_event": obs["t"], "window_start": None, "window_end": None,
            "severity": severity_for(float(stats["mean_bps"] or 0.0), s.min_edge_bps),
            "value": float(obs["dir"]), "threshold": s.min_edge_bps,
            "evidence": {k: row[k] for k in ("asset", "detector", "source_alert_id", "horizon_s", "price",
                                             "count", "mean_bps", "hit_rate", "t_stat")},
            "event_ids": [], "ts_sent": obs["ts_sent"], "ts_ingest": obs["ts_ingest"], "ts_written": None,
        })

    def _prune(self, state: dict[str, Any]) -> None:
        """Keep prices a later question can reach and at most ``4 * window`` resolved observations per
        source (the newest by decision time)."""
        floor = int(state["clock"]) - self.retention
        pending = [o["t"] for obs in state["sources"].values() for o in obs if not o["done"]]
        floor = min([floor, *pending])
        starts = state["prices"]["start"]
        cut = max(int(np.searchsorted(np.asarray(starts, dtype=np.int64), floor, side="right")) - 1, 0)
        if cut:
            state["prices"]["start"] = starts[cut:]
            state["prices"]["price"] = state["prices"]["price"][cut:]
        keep = 4 * self.settings.window
        for source, observations in state["sources"].items():
            resolved = (o for o in observations if o["done"] and o["fwd"])
            done = sorted(resolved, key=lambda o: (o["t"], o["id"]))
            drop = {id(o) for o in done[:-keep]} | {id(o) for o in observations if o["done"] and not o["fwd"]}
            state["sources"][source] = [o for o in observations if id(o) not in drop]


def _opt(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)
