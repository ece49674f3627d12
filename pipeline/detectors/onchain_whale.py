"""MOD-010 onchain-whale: a large on-chain transfer, to or from a known exchange wallet or between others.

Semantics: docs/DETECTORS.md "MOD-010". Transfers reach this module keyed by their asset's reference
instrument (``pipeline.onchain.route_transfers``), so one key's state holds that instrument's price
steps (``PriceAsOf``) and the transfers it still holds: a transfer is evaluated once the instrument's
clock is strictly greater than its block time, at the price as of its block time, whatever the order
in which transfers and trades arrived. A stablecoin's transfers are worth their amount in USD at their
own arrival, under the reference instrument of the market they count for (``stablecoin_markets``), else
under ``(chain, asset)``; an asset with neither has no USD value (``NO_PRICE``).

MOD-004's counts about transfers are written here, because only this module sees them: ``NO_PRICE``,
``DUPLICATE_ID`` (a repeated ``(chain, tx_hash, log_index)``) and ``LATE_EVENT`` (a block time more than
``retention_seconds`` behind its key's clock at arrival), under ``(chain, asset)``, when MOD-004 is on.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

import numpy as np
import pandas as pd
from pydantic import Field

from core.events import TapeKind, transfer_id
from core.frozen import Frozen
from pipeline.alerts import alert_id
from pipeline.detectors.asof import PENDING, PriceAsOf
from pipeline.detectors.base import DetectorInput, DetectorOutput, Key, KeyedDetector, alerts_frame
from pipeline.detectors.data_quality import DQ_METRICS, DQ_METRICS_SCHEMA, DataQualitySettings
from pipeline.detectors.whale import WhaleSettings
from pipeline.detectors.windows import NO_TIME
from pipeline.tables import TableDef

_KEPT: Final = (
    "chain", "tx_hash", "log_index", "block", "ts_event", "ts_recv", "asset", "amount", "from_addr",
    "to_addr", "ts_sent", "ts_ingest",
)
"""What a held transfer keeps in the key's state (JSON data)."""


class OnchainWhaleSettings(WhaleSettings):
    """MOD-010: USD thresholds per asset (``thresholds_usd``, else ``default_threshold_usd``), severity
    multiples as MOD-001, and how far behind its key's clock a transfer may arrive."""

    retention_seconds: int = Field(86_400, gt=0)


class OnchainWhaleDetector(KeyedDetector[OnchainWhaleSettings]):
    """Prices each transfer as of its block time and fires on ``amount * price >= threshold``."""

    module_id: ClassVar[str] = "MOD-010"
    name: ClassVar[str] = "onchain-whale"
    description: ClassVar[str] = "a large on-chain transfer, to or from an exchange wallet or between others"
    inputs: ClassVar[tuple[TapeKind, ...]] = ("trade", "quote", "transfer")
    settings_model: ClassVar[type[Frozen]] = OnchainWhaleSettings
    metric_tables: ClassVar[tuple[TableDef, ...]] = (DQ_METRICS,)

    def new_state(self) -> dict[str, Any]:
        """Price steps, held transfers, ids seen within retention and the key's clock."""
        return {"asof": {}, "pending": [], "seen": {}, "clock": NO_TIME}

    def detect(self, frames: DetectorInput) -> DetectorOutput:
        """Every key holding transfers in this batch, and every reference instrument (its price steps)."""
        references = self._references()
        kinds: tuple[TapeKind, ...] = ("trade", "quote", "transfer")
        groups: dict[TapeKind, dict[Key, pd.DataFrame]] = {}
        for kind in kinds:
            frame = frames.frame(kind)
            groups[kind] = {} if frame.empty else {
                (str(k[0]), str(k[1])): g for k, g in frame.groupby(["exchange", "symbol"], sort=False)
            }
        keys = set(groups["transfer"]) | ((set(groups["trade"]) | set(groups["quote"])) & references)
        outputs = []
        for key in sorted(keys):
            state = self.states.get(key) or self.new_state()
            trades = groups["trade"].get(key, frames.trades.iloc[0:0])
            quotes = groups["quote"].get(key, frames.quotes.iloc[0:0])
            if key in groups["transfer"]:
                out, self.states[key] = self.step(key, trades, quotes, groups["transfer"][key], state)
            else:
                out, self.states[key] = self.process_key(key, trades, quotes, state)
            outputs.append(out)
        return DetectorOutput.concat(outputs)

    def _references(self) -> set[Key]:
        """The reference instruments of the assets that are not stablecoins: the keys that price."""
        stable = self.config.tokens.stablecoins
        return {(k[0], k[1]) for a, k in self.config.instruments.reference.items() if a not in stable}

    def process_key(
        self, key: Key, trades: pd.DataFrame, quotes: pd.DataFrame, state: Any
    ) -> tuple[DetectorOutput, Any]:
        """A key's market events of a batch without transfers: its price steps advance, held transfers
        whose block time the clock passes are evaluated."""
        return self.step(key, trades, quotes, pd.DataFrame(), state)

    def step(
        self, key: Key, trades: pd.DataFrame, quotes: pd.DataFrame, transfers: pd.DataFrame, state: Any
    ) -> tuple[DetectorOutput, Any]:
        """One key's batch: market events and transfers, each in arrival order."""
        retention = self.settings.retention_seconds * 1_000_000
        prices_here = key in self._references()
        asof = PriceAsOf(retention, state["asof"])
        arrival, ts, counted, price = _market(trades, quotes)
        chunk_clock = asof.clock
        running = np.maximum.accumulate(np.maximum(ts, chunk_clock)) if len(ts) else ts
        asof.feed(ts, counted, price)
        # (transfer, decision arrival or None while unknown, clock it is asked at)
        todo: list[tuple[dict[str, Any], int | None, int]] = [
            (t, None, chunk_clock) for t in state["pending"]
        ]
        dq: list[tuple[dict[str, Any], str]] = []
        seen: dict[str, int] = state["seen"]
        own_clock = int(state["clock"])
        for row in transfers.sort_values("arrival").to_dict("records") if len(transfers) else []:
            item = {name: _plain(row[name]) for name in _KEPT}
            if prices_here:
                at = int(np.searchsorted(arrival, int(row["arrival"]))) - 1
                asked = int(running[at]) if at >= 0 else chunk_clock
            else:  # no instrument behind the key: its clock is its transfers' block times
                own_clock = asked = max(own_clock, item["ts_event"])
            ident = transfer_id(item["chain"], item["tx_hash"], item["log_index"])
            if item["ts_event"] < asked - retention:
                dq.append((item, "LATE_EVENT"))
            elif ident in seen:
                dq.append((item, "DUPLICATE_ID"))
            else:
                seen[ident] = item["ts_event"]
                todo.append((item, int(row["arrival"]), asked))
        values = np.full(len(todo), np.nan)
        decided = np.array([-1 if a is None else a for _, a, _ in todo], dtype=np.int64)
        stable = np.array([t["asset"] in self.config.tokens.stablecoins for t, _, _ in todo], dtype=bool)
        values[stable] = 1.0
        held = np.zeros(len(todo), dtype=bool)
        if prices_here and len(todo):
            xs = np.array([t["ts_event"] for t, _, _ in todo], dtype=np.int64)
            asked_at = np.array([asked for _, _, asked in todo], dtype=np.int64)
            found, rows = asof.resolve(xs, asked_at)
            held = (rows == PENDING) & ~stable
            by_event = np.where(rows >= 0, arrival[np.maximum(rows, 0)] if len(arrival) else -1, -1)
            values = np.where(stable, values, found)
            decided = np.where(stable, decided, np.maximum(decided, by_event))  # a stablecoin: at arrival
        alerts: list[dict[str, Any]] = []
        for (item, _, _), value, when, wait in zip(todo, values, decided, held, strict=True):
            if wait:
                continue
            if np.isnan(value):
                dq.append((item, "NO_PRICE"))
            elif (alert := self._alert(key, item, float(value), int(when))) is not None:
                alerts.append(alert)
        clock = max(asof.clock, own_clock)
        state = {
            "asof": asof.to_state(), "clock": own_clock,
            "pending": [item for (item, _, _), wait in zip(todo, held, strict=True) if wait],
            "seen": {i: t for i, t in seen.items() if t >= clock - retention},
        }
        metrics = {"dq_metrics": self._dq(dq)} if dq and self.config.enabled("MOD-004") else {}
        return DetectorOutput(alerts=alerts_frame(alerts), metrics=metrics), state

    def _alert(self, key: Key, t: dict[str, Any], price: float, decided: int) -> dict[str, Any] | None:
        settings = self.settings
        usd = t["amount"] * price
        threshold = settings.threshold(t["asset"])
        if not usd >= threshold:
            return None
        levels = sorted(settings.severity_multiples.items(), key=lambda kv: kv[1])
        severity = [lvl for lvl, m in levels if usd >= m * threshold][-1]
        wallets = self.config.wallets
        sender = wallets.wallet(t["chain"], t["from_addr"])
        receiver = wallets.wallet(t["chain"], t["to_addr"])
        if receiver is not None and receiver.kind == "exchange":
            kind = "exchange_inflow"
        elif sender is not None and sender.kind == "exchange":
            kind = "exchange_outflow"
        else:
            kind = "whale_transfer"
        stable = t["asset"] in self.config.tokens.stablecoins
        return {  # a pending transfer's arrival is in an earlier batch: the event that passed it decides
            "alert_id": alert_id(self.module_id, t["chain"], t["asset"], f"{t['tx_hash']}:{t['log_index']}"),
            "detector": self.module_id,
            "kind": kind,
            "exchange": t["chain"],
            "symbol": t["asset"],
            "ts_event": t["ts_event"],
            "window_start": None,
            "window_end": None,
            "severity": severity,
            "value": usd,
            "threshold": threshold,
            "evidence": {
                "chain": t["chain"], "asset": t["asset"], "amount": t["amount"], "usd": usd, "price": price,
                "price_instrument": None if stable else f"{key[0]}:{key[1]}",
                "from_addr": t["from_addr"], "to_addr": t["to_addr"],
                "from_label": None if sender is None else sender.entity,
                "from_kind": None if sender is None else sender.kind,
                "to_label": None if receiver is None else receiver.entity,
                "to_kind": None if receiver is None else receiver.kind,
                "tx_hash": t["tx_hash"], "log_index": t["log_index"], "block": t["block"],
                "ts_recv": t["ts_recv"], "multiple": usd / threshold,
            },
            "event_ids": [transfer_id(t["chain"], t["tx_hash"], t["log_index"])],
            "ts_sent": t["ts_sent"],
            "ts_ingest": t["ts_ingest"],
            "ts_written": None,
            "arrival": decided,
        }

    def _dq(self, counted: list[tuple[dict[str, Any], str]]) -> pd.DataFrame:
        width = self.config.settings_of(DataQualitySettings).window_seconds * 1_000_000
        rows = pd.DataFrame({
            "exchange": [t["chain"] for t, _ in counted],
            "symbol": [t["asset"] for t, _ in counted],
            "window_start": pd.array([t["ts_event"] // width * width for t, _ in counted], dtype="Int64"),
            "reason": [reason for _, reason in counted],
            "count": np.ones(len(counted), dtype=np.int64),
        })
        grouped = rows.groupby(list(DQ_METRICS_SCHEMA.names[:4]), sort=True)["count"].sum().reset_index()
        grouped["window_start"] = grouped["window_start"].astype("Int64")
        return grouped[DQ_METRICS_SCHEMA.names]


def _market(
    trades: pd.DataFrame, quotes: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A key's market events in arrival order: arrival, ts_event, counted trade, price."""
    parts = []
    if len(trades):
        counted = ~trades["late"].to_numpy(dtype=bool) & ~trades["duplicate"].to_numpy(dtype=bool)
        parts.append(pd.DataFrame({
            "arrival": trades["arrival"].to_numpy(dtype=np.int64),
            "ts": trades["ts_event"].to_numpy(dtype=np.int64),
            "counted": counted, "price": trades["price"].to_numpy(dtype=np.float64),
        }))
    if len(quotes):
        parts.append(pd.DataFrame({
            "arrival": quotes["arrival"].to_numpy(dtype=np.int64),
            "ts": quotes["ts_event"].to_numpy(dtype=np.int64),
            "counted": np.zeros(len(quotes), dtype=bool), "price": np.full(len(quotes), np.nan),
        }))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=bool), np.zeros(0, dtype=np.float64)
    merged = pd.concat(parts, ignore_index=True).sort_values("arrival", kind="stable")
    return (
        merged["arrival"].to_numpy(dtype=np.int64), merged["ts"].to_numpy(dtype=np.int64),
        merged["counted"].to_numpy(dtype=bool), merged["price"].to_numpy(dtype=np.float64),
    )


def _plain(value: Any) -> Any:
    """A frame cell as JSON data: ``None`` for a missing value, Python ints and floats."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        value = float(value)
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return value
