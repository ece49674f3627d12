"""MOD-005 cross-exchange-basis: two instruments of one asset whose prices part for several windows.

Exact rules: docs/DETECTORS.md, "MOD-005". Two halves under one module id:

- ``BasisPriceFeed`` (instrument half, the module's ``CrossDetector.feed``): per key of a configured
  pair, the last counted trade price of each closed 10-second window under the key's own watermark,
  published as feed rows (a run of windows without one, closed by one event, is one ``no_trade`` row).
- ``BasisDetector`` (asset half, in ``pipeline.cross``): per pair, each window once both legs published
  it, with the carry rule, ``basis_metrics`` rows, episodes and ``BASIS_STALLED`` counts.

State of a key (feed, besides the clock ``WindowedDetector`` keeps): ``next`` the first window not yet
published (``None`` before the key's first event) and ``open`` the open windows' last price.
State of an asset: per pair (``"exchange:symbol|exchange:symbol"``), ``rows`` each leg's published
spans not yet evaluated ``[start, end, price or None, clock]``, ``last`` each leg's last traded
``[window, price]``, the open ``episode`` and ``stalled`` each leg's last counted stall clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Final

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import Field

from core.errors import ConfigError
from core.frozen import Frozen
from pipeline.alerts import alert_id
from pipeline.detectors.base import (
    CrossDetector,
    DetectorOutput,
    KeyedDetector,
    alerts_frame,
)
from pipeline.detectors.data_quality import DQ_METRICS, DQ_METRICS_SCHEMA
from pipeline.detectors.windowed import KeyChunk, WindowedDetector
from pipeline.detectors.windows import closing_bound, closing_rows, window_starts
from pipeline.tables import TableDef

if TYPE_CHECKING:
    from pipeline.config import Config

MODULE_ID: Final = "MOD-005"
KIND: Final = "basis_divergence"
PRICED: Final = "window_price"
"""Kind of a feed row for one window with a counted trade; ``value`` is its last price."""
UNPRICED: Final = "no_trade"
"""Kind of a feed row for a run of windows without a counted trade (``value`` 0)."""
STALLED: Final = "BASIS_STALLED"
_SEVERITY_STEPS: Final = ((4.0, "high"), (2.0, "medium"), (1.0, "low"))

BASIS_METRICS_SCHEMA: Final = pa.schema([
    pa.field("asset", pa.string(), nullable=False),
    pa.field("exchange_a", pa.string(), nullable=False),
    pa.field("symbol_a", pa.string(), nullable=False),
    pa.field("exchange_b", pa.string(), nullable=False),
    pa.field("symbol_b", pa.string(), nullable=False),
    pa.field("window_start", pa.int64(), nullable=False),
    pa.field("window_end", pa.int64(), nullable=False),
    pa.field("price_a", pa.float64(), nullable=False),
    pa.field("price_b", pa.float64(), nullable=False),
    pa.field("carried_a", pa.bool_(), nullable=False),
    pa.field("carried_b", pa.bool_(), nullable=False),
    pa.field("basis_bps", pa.float64(), nullable=False),
])
BASIS_METRICS: Final = TableDef(
    name="basis_metrics",
    schema=BASIS_METRICS_SCHEMA,
    key=("asset", "exchange_a", "symbol_a", "exchange_b", "symbol_b", "window_start"),
    description="MOD-005: per configured pair and closed 10-second window with a basis, both prices and "
    "the basis in bps",
)
DEFAULT_PAIRS: Final = (
    ("binance:BTCUSDT", "coinbase:BTC-USD"),
    ("binance:ETHUSDT", "coinbase:ETH-USD"),
    ("binance:SOLUSDT", "coinbase:SOL-USD"),
    ("binance:BTCUSDT", "binance-futures:BTCUSDT"),
)


def severity_for(basis_bps: float, threshold_bps: float) -> str:
    """``low`` from the threshold, ``medium`` from 2x, ``high`` from 4x (in absolute value)."""
    for multiple, level in _SEVERITY_STEPS:
        if abs(basis_bps) >= multiple * threshold_bps:
            return level
    return "low"


def basis_bps(price_a: float, price_b: float) -> float:
    """``(a - b) / ((a + b) / 2) * 1e4``: prices as quoted, so a USDT/USD rate is part of the basis."""
    return (price_a - price_b) / ((price_a + price_b) / 2) * 1e4


def leg(exchange: str, symbol: str) -> str:
    """An instrument as the pairs name it: ``exchange:symbol``."""
    return f"{exchange}:{symbol}"


class BasisSettings(Frozen):
    """MOD-005: the pairs, the window, the carry, the episode threshold and the stall bound."""

    pairs: tuple[tuple[str, str], ...] = DEFAULT_PAIRS
    """Ordered pairs ``(a, b)`` of ``exchange:symbol``; ``basis = a - b`` over their mean."""
    window_seconds: int = Field(10, gt=0)
    max_carry_windows: int = Field(6, ge=0)
    min_windows: int = Field(3, ge=1)
    threshold_bps: float = Field(25.0, gt=0)
    stall_seconds: int = Field(60, gt=0)


class BasisPriceFeed(WindowedDetector[BasisSettings]):
    """MOD-005's instrument half: each closed window's last counted trade price of a pair's leg."""

    module_id: ClassVar[str] = MODULE_ID
    name: ClassVar[str] = "cross-exchange-basis-feed"
    description: ClassVar[str] = "per pair leg, the last counted trade price of each closed 10 s window"
    settings_model: ClassVar[type[Frozen]] = BasisSettings

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.width = self.settings.window_seconds * 1_000_000
        self.legs = {p for pair in self.settings.pairs for p in pair}

    def process_chunk(
        self, chunk: KeyChunk, state: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], dict[str, pd.DataFrame]]:
        """Record the chunk's counted trade prices in their windows, publish the windows it closed."""
        if leg(chunk.exchange, chunk.symbol) not in self.legs:
            return [], {}
        state.setdefault("open", {})
        if state.setdefault("next", None) is None:
            # from the first event on, so a leg that only quotes still lets the pair move on
            state["next"] = int(window_starts(chunk.ts[:1], self.width)[0])
        trades = chunk.trades
        if len(trades):
            notional = trades["notional_usd"].to_numpy(dtype=np.float64, na_value=np.nan)
            counted = (
                ~trades["late"].to_numpy(dtype=bool)
                & ~trades["duplicate"].to_numpy(dtype=bool)
                & ~np.isnan(notional)
            )
            if counted.any():
                wins = window_starts(trades["ts_event"].to_numpy(dtype=np.int64)[counted], self.width)
                prices = trades["price"].to_numpy(dtype=np.float64)[counted]
                # a counted trade is never in a published window, but may precede the first event's
                state["next"] = min(int(state["next"]), int(wins.min()))
                # later trades overwrite earlier ones: each window keeps its last in arrival order
                state["open"].update(zip(map(str, wins.tolist()), prices.tolist(), strict=True))
        return self._publish(chunk, state), {}

    def _publish(self, chunk: KeyChunk, state: dict[str, Any]) -> list[dict[str, Any]]:
        bound = closing_bound(chunk.max_ts, self.delay_us, self.width)
        if int(state["next"]) >= bound:
            return []
        starts = np.arange(int(state["next"]), bound, self.width, dtype=np.int64)
        closers = closing_rows(chunk.running_max, starts + self.width, self.delay_us)
        arrivals = np.empty(len(chunk), dtype=np.int64)  # batch arrival of each merged row
        arrivals[chunk.is_trade] = chunk.trades["arrival"].to_numpy(dtype=np.int64)
        arrivals[~chunk.is_trade] = chunk.quotes["arrival"].to_numpy(dtype=np.int64)
        rows: list[dict[str, Any]] = []
        span: list[int] | None = None  # [first start, closer] of a run of empty windows
        for start, closer in zip(starts.tolist(), closers.tolist(), strict=True):
            price = state["open"].pop(str(start), None)
            if span is not None and (price is not None or closer != span[1]):
                rows.append(self._row(chunk, span[0], start, None, int(arrivals[span[1]])))
                span = None
            if price is not None:
                rows.append(self._row(chunk, start, start + self.width, float(price), int(arrivals[closer])))
            elif span is None:
                span = [start, closer]
        if span is not None:
            rows.append(self._row(chunk, span[0], bound, None, int(arrivals[span[1]])))
        state["next"] = bound
        return rows

    def _row(
        self, chunk: KeyChunk, start: int, end: int, price: float | None, arrival: int
    ) -> dict[str, Any]:
        """A feed row: the windows ``[start, end)`` of the key and their price (``None``: no trade)."""
        return {
            "alert_id": alert_id(MODULE_ID, chunk.exchange, chunk.symbol, f"window:{start}"),
            "detector": MODULE_ID, "kind": UNPRICED if price is None else PRICED,
            "exchange": chunk.exchange, "symbol": chunk.symbol, "ts_event": end, "window_start": start,
            "window_end": end, "severity": "low", "value": 0.0 if price is None else price,
            "threshold": 0.0, "evidence": {}, "event_ids": [], "ts_sent": None, "ts_ingest": None,
            "ts_written": None, "arrival": arrival,
        }


class BasisDetector(CrossDetector[BasisSettings]):
    """MOD-005: per configured pair of one asset, the basis of each closed window and its episodes."""

    module_id: ClassVar[str] = MODULE_ID
    name: ClassVar[str] = "cross-exchange-basis"
    description: ClassVar[str] = "two instruments of one asset apart by >= 25 bps for 3 windows of 10 s"
    settings_model: ClassVar[type[Frozen]] = BasisSettings
    feed: ClassVar[type[KeyedDetector[Any]] | None] = BasisPriceFeed
    metric_tables: ClassVar[tuple[TableDef, ...]] = (BASIS_METRICS, DQ_METRICS)

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        s = self.settings
        self.width = s.window_seconds * 1_000_000
        self.carry_us = s.max_carry_windows * self.width
        self.stall_us = s.stall_seconds * 1_000_000
        self.pairs: dict[str, list[tuple[str, str]]] = {}
        active = {leg(*k) for k in config.active_instruments}
        for a, b in s.pairs:
            asset = self._asset_of_pair(config, a, b)
            if a not in active or b not in active:
                # the defaults name pairs over three venues; a run replays the venues its input holds
                continue
            exchanges = {self._exchanges(p) for p in self.pairs.get(asset, [])}
            if self._exchanges((a, b)) in exchanges:
                raise ConfigError(f"{MODULE_ID}: two {asset} pairs between {self._exchanges((a, b))}; their "
                                  "alerts would share ids, keep one of them")
            self.pairs.setdefault(asset, []).append((a, b))

    @staticmethod
    def _asset_of_pair(config: Config, a: str, b: str) -> str:
        assets = []
        for name in (a, b):
            exchange, _, symbol = name.partition(":")
            inst = config.instruments.get(exchange, symbol)
            if inst is None:
                raise ConfigError(f"{MODULE_ID} pair {a} / {b}: {name!r} is not an exchange:symbol listed in "
                                  "config/instruments.yaml")
            assets.append(inst.asset)
        if a == b or assets[0] != assets[1]:
            raise ConfigError(f"{MODULE_ID} pair {a} / {b} must be two instruments of one asset "
                              f"(they are of {assets[0]} and {assets[1]})")
        return assets[0]

    @staticmethod
    def _exchanges(pair: tuple[str, str]) -> str:
        """The alert's ``exchange``: ``"a|b"`` with the legs' exchanges."""
        return "|".join(p.partition(":")[0] for p in pair)

    def new_state(self) -> dict[str, Any]:
        """An asset none of whose pairs has published anything."""
        return {"pairs": {}}

    def process_group(self, group: str, items: pd.DataFrame, state: Any) -> tuple[DetectorOutput, Any]:
        """Queue each released feed row under the pairs of its leg, then evaluate what both legs closed."""
        pairs = self.pairs.get(group, [])
        for pair in pairs:
            state["pairs"].setdefault("|".join(pair), {
                "rows": {pair[0]: [], pair[1]: []}, "last": {pair[0]: None, pair[1]: None},
                "episode": None, "stalled": {pair[0]: None, pair[1]: None},
            })
        for item in items.itertuples(index=False):
            if item.detector != MODULE_ID:
                continue
            name = leg(item.exchange, item.symbol)
            price = float(item.value) if item.kind == PRICED else None
            for pair in pairs:
                if name in pair:
                    state["pairs"]["|".join(pair)]["rows"][name].append(
                        [int(item.window_start), int(item.window_end), price, int(item.clock)]
                    )
        alerts: list[dict[str, Any]] = []
        metrics: list[dict[str, Any]] = []
        stalls: list[dict[str, Any]] = []
        for pair in pairs:
            self._evaluate_pair(group, pair, state["pairs"]["|".join(pair)], alerts, metrics, stalls)
        out_metrics = {
            BASIS_METRICS.name: pd.DataFrame(metrics, columns=BASIS_METRICS_SCHEMA.names),
            DQ_METRICS.name: pd.DataFrame(stalls, columns=DQ_METRICS_SCHEMA.names),
        }
        return DetectorOutput(alerts=alerts_frame(alerts), metrics=out_metrics), state

    def _evaluate_pair(
        self, asset: str, pair: tuple[str, str], ps: dict[str, Any],
        alerts: list[dict[str, Any]], metrics: list[dict[str, Any]], stalls: list[dict[str, Any]],
    ) -> None:
        """Every window both legs have published, in order; consumed rows leave the state."""
        queues = [ps["rows"][pair[0]], ps["rows"][pair[1]]]
        for queue in queues:
            queue.sort(key=lambda r: r[0])  # one event may publish several rows: release order ties them
        while queues[0] and queues[1]:
            w = min(queues[0][0][0], queues[1][0][0])
            # a leg whose first row starts after w had not started: nothing of it exists at w
            spans = [q[0] if q[0][0] <= w else None for q in queues]
            prices: list[float | None] = []
            traded = []
            for side, span in zip(pair, spans, strict=True):
                price = span[2] if span is not None else None
                traded.append(price is not None)
                if price is not None:
                    ps["last"][side] = [w, price]
                    prices.append(price)
                else:
                    last = ps["last"][side]
                    prices.append(float(last[1]) if last is not None and w - int(last[0]) <= self.carry_us
                                  else None)
            if spans[0] is not None and spans[1] is not None:
                self._stall(pair, ps, w, int(spans[0][3]), int(spans[1][3]), stalls)
            pa_, pb_ = prices
            if any(traded) and pa_ is not None and pb_ is not None:
                bps = basis_bps(pa_, pb_)
                metrics.append(self._metric(asset, pair, w, pa_, pb_, traded, bps))
                self._episode(asset, pair, ps, w, pa_, pb_, bps, alerts)
            else:
                ps["episode"] = None
            for q in queues:
                if q[0][0] <= w:
                    q[0][0] = w + self.width
                    if q[0][0] >= q[0][1]:
                        q.pop(0)

    def _stall(
        self, pair: tuple[str, str], ps: dict[str, Any], w: int, clock_a: int, clock_b: int,
        stalls: list[dict[str, Any]],
    ) -> None:
        """``BASIS_STALLED`` for the leg that closed ``w`` at least ``stall_seconds`` after the other,
        once per closing event of that leg (its clock)."""
        for side, mine, other in ((pair[0], clock_a, clock_b), (pair[1], clock_b, clock_a)):
            if mine - other >= self.stall_us and ps["stalled"][side] != mine:
                ps["stalled"][side] = mine
                exchange, _, symbol = side.partition(":")
                stalls.append({"exchange": exchange, "symbol": symbol, "window_start": w,
                               "reason": STALLED, "count": 1})

    def _metric(
        self, asset: str, pair: tuple[str, str], w: int, price_a: float, price_b: float,
        traded: list[bool], bps: float,
    ) -> dict[str, Any]:
        (ex_a, _, sym_a), (ex_b, _, sym_b) = (p.partition(":") for p in pair)
        return {
            "asset": asset, "exchange_a": ex_a, "symbol_a": sym_a, "exchange_b": ex_b, "symbol_b": sym_b,
            "window_start": w, "window_end": w + self.width, "price_a": price_a, "price_b": price_b,
            "carried_a": not traded[0], "carried_b": not traded[1], "basis_bps": bps,
        }

    def _episode(
        self, asset: str, pair: tuple[str, str], ps: dict[str, Any], w: int, price_a: float,
        price_b: float, bps: float, alerts: list[dict[str, Any]],
    ) -> None:
        s = self.settings
        if abs(bps) < s.threshold_bps:
            ps["episode"] = None
            return
        sign = 1 if bps > 0 else -1
        episode = ps["episode"]
        if episode is None or episode["sign"] != sign:
            episode = ps["episode"] = {"first": w, "sign": sign, "windows": 0, "basis": []}
        episode["windows"] += 1
        if episode["windows"] > s.min_windows:
            return  # a longer episode fires no second alert
        episode["basis"].append(bps)
        if episode["windows"] < s.min_windows:
            return
        end = w + self.width
        alerts.append({
            "alert_id": alert_id(MODULE_ID, self._exchanges(pair), asset, episode["first"]),
            "detector": MODULE_ID, "kind": KIND, "exchange": self._exchanges(pair), "symbol": asset,
            "ts_event": end, "window_start": episode["first"], "window_end": end,
            "severity": severity_for(bps, s.threshold_bps), "value": bps, "threshold": s.threshold_bps,
            "evidence": {"a": pair[0], "b": pair[1], "price_a": price_a, "price_b": price_b,
                         "basis_bps": list(episode["basis"])},
            "event_ids": [], "ts_sent": None, "ts_ingest": None, "ts_written": None,
        })
