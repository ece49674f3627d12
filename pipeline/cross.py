"""The asset and global stage: modules whose scope is wider than one instrument (docs/DETECTORS.md,
"Key scopes").

Where it runs and why: per-instrument work (the sequencer and every ``instrument`` module) runs inside
``Engine.run``, per key, on the executors in ``state_store`` mode. An ``asset`` or ``global`` module needs
several instruments at once, which no per-key step sees, so it runs **on the driver after the instrument
stage of every micro-batch**, over what that stage published: the alerts of the modules it consumes
and the module's own **feed rows**, each with its **decision time** (``ts_event`` of the event whose
arrival produced it) and its **clock** (the instrument's clock at that event), and every instrument's
clock after the batch. Feed rows are how a module gets more than alerts (MOD-005: each instrument's last
price per closed 10-second window): its ``CrossDetector.feed``, an instrument-scoped ``KeyedDetector``
with the module's id, runs per key inside the instrument stage like any keyed module (its state per key
in the engine state, so on the executors in ``state_store`` mode) and returns alert-shaped rows that
are never written, only handed to its module as items. Alerts and feed rows are one kind of item under
one release rule. The driver only ever holds such small rows and one clock per instrument, never
events, so the stage stays small on a cluster. Its state (pending items, clocks, each module's state
per group) is JSON data saved with the engine state under the checkpoint, so a re-run batch starts
again from the state before it.

Streaming = batch = reference **by construction**: an item is handed to its module only once every
*participating* instrument's clock is strictly greater than the item's clock (the clock rule), and the
items released together are sorted by ``(clock, decision time, exchange, symbol, detector, alert_id)``.
Every instrument's items come in clock order and no instrument can later publish an item with a clock
below its own clock, so the released sequence is a function of each instrument's own event sequence,
whatever the micro-batches, shard interleaving or speed. Participants are configured, never "seen so
far" (which would depend on the interleaving): the tier's ``instruments`` list, which an enabled asset
or global module requires (``coattail run`` sets it from the tape). A participant that never trades
holds its group back; items still pending when the input ends are not evaluated, as open
windows are not.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import ConfigError, PipelineError
from core.events import CHAINS
from pipeline.alerts import ALERT_SCHEMA
from pipeline.detectors.base import (
    ARRIVAL,
    AnyDetector,
    CrossDetector,
    DetectorOutput,
    Key,
)
from pipeline.detectors.windows import NO_TIME
from pipeline.onchain import transfer_key

if TYPE_CHECKING:
    from pipeline.config import Config

FEED: Final = "__feed__"
"""Internal table of a ``BatchResult``: the decision time and clock of every alert of the batch."""
CLOCKS: Final = "__clocks__"
"""Internal table of a ``BatchResult``: every instrument's clock after the batch."""
ROWS: Final = "__rows__"
"""Internal table of a ``BatchResult``: the feed rows of the batch (``ALERT_SCHEMA``, never written)."""
INTERNAL_TABLES: Final = (FEED, CLOCKS, ROWS)
FEED_SCHEMA: Final = pa.schema([
    pa.field("alert_id", pa.string(), nullable=False),
    pa.field("decision_ts", pa.int64(), nullable=False),
    pa.field("clock", pa.int64(), nullable=False),
])
CLOCKS_SCHEMA: Final = pa.schema([
    pa.field("exchange", pa.string(), nullable=False),
    pa.field("symbol", pa.string(), nullable=False),
    pa.field("clock", pa.int64(), nullable=False),
])
ITEM_SCHEMA: Final = ALERT_SCHEMA.append(pa.field("decision_ts", pa.int64(), nullable=False)).append(
    pa.field("clock", pa.int64(), nullable=False)
)
"""What an asset or global module receives per released alert (and what pending ones are kept as)."""
INTERNAL_SCHEMAS: Final = {FEED: FEED_SCHEMA, CLOCKS: CLOCKS_SCHEMA, ROWS: ALERT_SCHEMA}
"""Every internal table by name, for the code that assembles a ``BatchResult`` from parts."""
_ITEM_TYPES: Final = {pa.int64(): pd.Int64Dtype()}
ITEM_ORDER: Final = ["clock", "decision_ts", "exchange", "symbol", "detector", "alert_id"]
GLOBAL: Final = "*"
"""The one group of a ``global`` module."""


def feed_table(
    alerts: pd.DataFrame, events: Sequence[pd.DataFrame], consumed: Collection[str]
) -> pa.Table:
    """Decision time and clock of each alert that names the event whose arrival produced it (``events``:
    the batch's frames that carry ``arrival``, ``ts_event`` and ``clock``: trades, quotes, transfers).

    An alert of a ``consumed`` module without that event is a ``PipelineError`` naming the module: its
    consumers would never see it.
    """
    has = alerts[ARRIVAL].notna().to_numpy() if ARRIVAL in alerts else np.zeros(len(alerts), dtype=bool)
    lacking = sorted(set(alerts.loc[~has, "detector"]) & set(consumed))
    if lacking:
        raise PipelineError(
            f"alerts of {', '.join(lacking)} carry no 'arrival' (the event that produced them), so the "
            "modules that consume them cannot be fed; set it in each alert row (docs/DETECTORS.md)"
        )
    if not has.any():
        return FEED_SCHEMA.empty_table()
    by_arrival = pd.concat(
        [f[["arrival", "ts_event", "clock"]] for f in events if len(f)], ignore_index=True
    ).set_index("arrival")
    hits = alerts[has]
    at = by_arrival.loc[hits[ARRIVAL].astype("int64").to_numpy()]
    return pa.table({
        "alert_id": pa.array(hits["alert_id"].tolist(), pa.string()),
        "decision_ts": pa.array(at["ts_event"].to_numpy(dtype=np.int64)),
        "clock": pa.array(at["clock"].to_numpy(dtype=np.int64)),
    }, schema=FEED_SCHEMA)


def clocks_table(clocks: dict[Key, int]) -> pa.Table:
    """The instruments' clocks as ``CLOCKS_SCHEMA`` rows."""
    keys = sorted(clocks)
    return pa.table({
        "exchange": pa.array([k[0] for k in keys], pa.string()),
        "symbol": pa.array([k[1] for k in keys], pa.string()),
        "clock": pa.array([clocks[k] for k in keys], pa.int64()),
    }, schema=CLOCKS_SCHEMA)


class CrossStage:
    """Holds the enabled asset and global modules and runs them over one batch's published items."""

    def __init__(self, config: Config, detectors: Sequence[AnyDetector]) -> None:
        self.config = config
        self.detectors: list[CrossDetector[Any]] = []
        for det in detectors:
            if not isinstance(det, CrossDetector):
                raise ConfigError(f"{det.module_id} has scope {det.scope!r} but is not a CrossDetector")
            self.detectors.append(det)
        if self.detectors and not config.active_instruments:
            names = ", ".join(d.module_id for d in self.detectors)
            raise ConfigError(
                f"{names} wait for every participating instrument, and the tier names none: set "
                "`instruments` (exchange:symbol, e.g. --set 'instruments=[binance:BTCUSDT,coinbase:BTC-USD]')"
                "; coattail run sets it from its tapes"
            )
        self.participants: list[Key] = list(config.active_instruments)
        self.asset_of = {k: config.instruments.asset_of(*k) or "" for k in self.participants}
        self.feeds: list[AnyDetector] = [d.feed(config) for d in self.detectors if d.feed is not None]
        """The modules' instrument halves (``CrossDetector.feed``), run by the instrument stage."""

    @property
    def consumed(self) -> set[str]:
        """The modules whose alerts or feed rows this stage's modules receive."""
        return {m for det in self.detectors for m in self.inputs_of(det)}

    @staticmethod
    def inputs_of(det: CrossDetector[Any]) -> tuple[str, ...]:
        """The ``detector`` values of the items ``det`` receives: what it consumes, and its own feed."""
        return (*det.consumes, det.module_id) if det.feed is not None else det.consumes

    @property
    def active(self) -> bool:
        """Whether any asset or global module is enabled (otherwise the stage costs nothing)."""
        return bool(self.detectors)

    def group_of(self, det: CrossDetector[Any], exchange: str, symbol: str) -> str | None:
        """The group an item belongs to for ``det``; ``None`` when its key does not participate.

        An on-chain item (MOD-010: ``exchange`` a chain, ``symbol`` the asset) belongs to the key it was
        produced on (``transfer_key``: the reference instrument of the asset, or of the market a
        stablecoin's flows count for), whose clock its ``clock`` is, so the clock rule holds for it as for
        that instrument's own items. One whose market has no reference (key ``(chain, asset)``)
        participates in no group.
        """
        key = (exchange, symbol)
        if exchange in CHAINS:
            key = transfer_key(exchange, symbol, self.config.tokens, self.config.instruments)
        if key not in self.asset_of:
            return None
        return GLOBAL if det.scope == "global" else self.asset_of[key]

    def watermark(self, det: CrossDetector[Any], group: str, clocks: dict[str, dict[str, int]]) -> int:
        """The lowest clock among the group's participants (``NO_TIME`` while one has not started)."""
        members = [k for k in self.participants if self.group_of(det, *k) == group]
        return min((clocks.get(k[0], {}).get(k[1], NO_TIME) for k in members), default=NO_TIME)

    def run(self, tables: dict[str, pa.Table], state: dict[str, Any]) -> DetectorOutput:
        """Fold one batch's ``FEED`` and ``CLOCKS`` (and its alerts) into ``state`` (JSON data, updated
        in place) and return what the released items made the modules raise."""
        clocks: dict[str, dict[str, int]] = state.setdefault("clocks", {})
        batch = tables[CLOCKS].to_pydict()
        for ex, sym, clock in zip(batch["exchange"], batch["symbol"], batch["clock"], strict=True):
            of_exchange = clocks.setdefault(ex, {})
            of_exchange[sym] = max(int(clock), of_exchange.get(sym, NO_TIME))
        fresh = items_of(pa.concat_tables([tables["alerts"], tables[ROWS]]), tables[FEED])
        outputs = []
        for det in self.detectors:
            mine: dict[str, Any] = state.setdefault("modules", {}).setdefault(det.module_id, {})
            held = pa.Table.from_pylist(mine.get("pending", []), schema=ITEM_SCHEMA)
            mask = pc.is_in(fresh.column("detector"), value_set=pa.array(self.inputs_of(det), pa.string()))
            # one Arrow table, one conversion: a module sees the same frame however the batches fell
            pending = pa.concat_tables([held, fresh.filter(mask)]).to_pandas(types_mapper=_ITEM_TYPES.get)
            groups: dict[str, Any] = mine.setdefault("groups", {})
            keep = []
            if len(pending):
                pairs = zip(pending["exchange"], pending["symbol"], strict=True)
                pending = pending.assign(_group=[self.group_of(det, ex, sym) for ex, sym in pairs])
                pending = pending[pending["_group"].notna()]
                for name, part in pending.groupby("_group", sort=True):
                    floor = self.watermark(det, str(name), clocks)
                    ready = part["clock"].to_numpy(dtype=np.int64) < floor
                    released = part[ready].sort_values(ITEM_ORDER, kind="stable").drop(columns="_group")
                    keep.append(part[~ready].drop(columns="_group"))
                    if len(released):
                        group_state = groups.get(str(name))
                        if group_state is None:
                            group_state = det.new_state()
                        out, groups[str(name)] = det.process_group(
                            str(name), released.reset_index(drop=True), group_state
                        )
                        outputs.append(out)
            left = pd.concat(keep, ignore_index=True) if keep else pending.iloc[0:0]
            mine["pending"] = pa.Table.from_pandas(
                left[ITEM_SCHEMA.names], schema=ITEM_SCHEMA, preserve_index=False
            ).to_pylist()
        return DetectorOutput.concat(outputs)


def items_of(alerts: pa.Table, feed: pa.Table) -> pa.Table:
    """The alerts that have a ``FEED`` row, with its decision time and clock (``ITEM_SCHEMA``)."""
    at = pc.index_in(feed.column("alert_id"), value_set=alerts.column("alert_id"))
    rows = alerts.take(at)
    return pa.Table.from_arrays(
        [*rows.columns, feed.column("decision_ts"), feed.column("clock")], schema=ITEM_SCHEMA
    )

