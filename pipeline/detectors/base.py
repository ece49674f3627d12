"""The detector contract: what a module (MOD-001, MOD-002, ...) implements and what it receives.

How a micro-batch reaches a detector (see ``pipeline.engine`` for the whole topology):

1. The source yields raw records; ``pipeline.parse`` turns them into valid events and quarantine rows.
2. The engine's sequencer (``pipeline.sequencer``) walks every key ``(exchange, symbol)`` in arrival
   order with that key's state from earlier batches and annotates each valid event with the per-key
   facts of docs/DETECTORS.md: ``late``, ``duplicate``, ``id_gap``, ``price_band``, ``stale`` and the
   trade's ``notional_usd``. Detectors never recompute these, so all modules agree on them.
3. Every enabled detector's ``detect`` is called once per batch with a ``DetectorInput``: one pandas
   frame per event kind holding the batch's valid events of *all* keys, each frame sorted by
   ``arrival`` (arrival order; per key it is the order of docs/DETECTORS.md "Arrival order").
4. The returned ``DetectorOutput`` (alerts in ``ALERT_SCHEMA`` plus named metric frames) goes to the
   router and the sinks.

The same code serves streaming and batch: a batch run is one call over the whole input with empty
state; a streaming run is one call per micro-batch with the state the previous call left. A detector is
correct when both give the same alerts and metrics (tests/pipeline check it for several batch sizes).

A **stateless** detector (MOD-001 whale, MOD-004 data quality) subclasses ``BaseDetector`` and
implements ``detect``. A **stateful** one (MOD-002, MOD-003: windows per key) subclasses
``KeyedDetector`` and implements ``new_state`` and ``process_key``; the engine keeps one state object
per key, persists it with the micro-batch (it survives a restart from the checkpoint) and gives it back
on the next batch. State is JSON data: dicts with str keys, lists, str, int, float (NaN and infinities
included), bool and None, of exactly those types (no tuples, no numpy scalars); the engine saves it as
JSON (``pipeline.versioned_json``) and refuses, naming the module, a state holding anything else, which
would come back different after a restart. It must depend only on the events seen (never on the wall
clock or on batch boundaries), so that a re-run batch or a different batch split gives the same output.
"""

from __future__ import annotations

import functools
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, Literal, TypeVar, cast, get_args

import pandas as pd
import pyarrow as pa

from core.errors import PipelineError
from core.events import TAPE_KINDS, TapeKind
from core.frozen import Frozen
from pipeline.alerts import ALERT_SCHEMA, evidence_json
from pipeline.parse import TRANSPORT_COLUMNS

if TYPE_CHECKING:
    from pipeline.config import Config

Scope = Literal["instrument", "asset", "global"]
"""Which events one evaluation of a module sees (docs/DETECTORS.md, "Key scopes"): one instrument
``(exchange, symbol)``, every instrument and stream of one asset, or everything."""
SCOPES: Final[tuple[Scope, ...]] = get_args(Scope)
S = TypeVar("S", bound=Frozen)


class NoSettings(Frozen):
    """The settings model of a module that has none."""

if TYPE_CHECKING:
    from pipeline.tables import TableDef

Key = tuple[str, str]
"""``(exchange, symbol)``: every detector works per key."""

META_COLUMNS: Final = ("arrival", *TRANSPORT_COLUMNS)
"""Columns every event frame carries besides the event schema:

- ``arrival`` (int64): the event's rank in the batch's arrival order (both kinds share one sequence,
  so a detector reading trades and quotes can interleave them); increasing within a batch only.
- ``ts_sent`` (Int64, nullable): when the replay or connector sent the record (wire field ``ts_sent``).
- ``ts_ingest`` (Int64, nullable): Kinesis ApproximateArrivalTimestamp in µs (null from a tape).
- ``shard_id``, ``sequence_number``, ``sub_sequence``: where the record came from (Kinesis, or the
  tape source's one shard ``"tape"``), kept for the bronze tables; detectors do not read them. The two
  strings are ``ARROW_BACKED``.
"""
ARROW_BACKED: Final = ("shard_id", "sequence_number")
"""Event frame columns held as Arrow strings (``pd.ArrowDtype(pa.string())``), not Python objects."""

TRADE_FLAGS: Final = (
    "late", "duplicate", "id_gap", "price_band", "stale", "notional_usd", "quote_currency", "clock"
)
"""Sequencer annotations on trades: ``late`` (bool), ``duplicate`` (bool), ``id_gap`` (int64, missing
ids before this trade, 0 for none), ``price_band`` (bool), ``stale`` (bool), ``notional_usd`` (float64,
NaN when the instrument registry gives no USD rate), ``quote_currency`` (str, "" when not listed),
``clock`` (int64, the key's clock once this event arrived: the largest ``ts_event`` of its valid events
so far, this one included)."""

QUOTE_FLAGS: Final = ("late", "stale", "crossed", "locked", "clock")
"""Sequencer annotations on quotes: ``late``, ``stale``, ``crossed`` (bid > ask), ``locked`` (bid == ask),
``clock``."""


ARRIVAL: Final = "arrival"
"""The column of a detector's alerts frame, beside ``ALERT_SCHEMA``'s, holding the batch ``arrival`` of
the event whose arrival produced the alert (null when none did). It is not written anywhere: the engine
turns it into the alert's decision time and clock for the asset and global stage (``pipeline.cross``)."""


def empty_frame(schema: pa.Schema) -> pd.DataFrame:
    """An empty frame of ``schema``'s columns as Arrow converts them (a new frame each call: the caller
    may add to it). The conversion, about 3 ms, runs once per schema; a copy costs 0.06 ms, and detectors
    ask for empty frames per key and batch (a paced 40-row trigger spent a third of its engine time
    converting them)."""
    return _empty_frame_of(schema).copy()


@functools.cache
def _empty_frame_of(schema: pa.Schema) -> pd.DataFrame:
    return schema.empty_table().to_pandas()


def empty_alerts() -> pd.DataFrame:
    """An empty alerts frame with the ``ALERT_SCHEMA`` columns and ``ARRIVAL`` (a new frame each call)."""
    return _empty_alerts().copy()


@functools.cache
def _empty_alerts() -> pd.DataFrame:
    frame = empty_frame(ALERT_SCHEMA)
    frame[ARRIVAL] = pd.Series(dtype="Int64")
    return frame


def alerts_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Alert rows (dicts with every ``ALERT_SCHEMA`` field) as a frame in schema column order.

    ``evidence`` may be given as a dict: it is serialized with ``pipeline.alerts.evidence_json``; an
    ``arrival`` key fills the ``ARRIVAL`` column.
    """
    if not rows:
        return empty_alerts()
    fixed = []
    for row in rows:
        evidence = row.get("evidence")
        if not isinstance(evidence, str):
            row = {**row, "evidence": evidence_json(evidence)}
        fixed.append({name: row.get(name) for name in ALERT_SCHEMA.names})
    frame = pa.Table.from_pylist(fixed, schema=ALERT_SCHEMA).to_pandas()
    frame[ARRIVAL] = pd.array([row.get(ARRIVAL) for row in rows], dtype="Int64")
    return frame


def opt_int(value: Any) -> int | None:
    """A nullable integer cell (``None``, ``pd.NA`` or NaN when missing) as ``int | None``."""
    return None if value is None or pd.isna(value) else int(value)


@dataclass(frozen=True)
class DetectorInput:
    """What ``detect`` receives for one batch.

    ``trades`` / ``quotes``: the batch's valid events of every key, sorted by ``arrival``, with the
    event schema columns, ``META_COLUMNS`` and the sequencer flags (``TRADE_FLAGS`` / ``QUOTE_FLAGS``).
    ``quarantine``: the batch's rejected records (``pipeline.parse.PARSED_SCHEMA`` columns, ``reason``
    set; ``exchange``/``symbol``/``ts_event`` null when unreadable), in arrival order.
    ``batch_id``: the micro-batch id (0 for a batch run); for logging, never for results.
    """

    trades: pd.DataFrame
    quotes: pd.DataFrame
    quarantine: pd.DataFrame = field(default_factory=pd.DataFrame)
    batch_id: int = 0
    upstream: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    """Alerts (``ALERT_SCHEMA``) the modules named in the detector's ``consumes`` raised from this
    same input, by module id; they ran first (``ModuleRegistry.run_order``)."""
    transfers: pd.DataFrame = field(default_factory=pd.DataFrame)
    """The batch's valid on-chain transfers (``TRANSFER_SCHEMA`` columns, ``arrival``, the transport
    columns, ``exchange``/``symbol`` = the key ``pipeline.onchain.route_transfers`` gave them, and
    ``clock``: that key's clock once the transfer arrived), sorted by ``arrival``. The sequencer does
    not see them: they move no instrument's clock."""
    key_groups: dict[TapeKind, tuple[pd.DataFrame, dict[Key, pd.DataFrame]]] = field(
        default_factory=dict, repr=False, compare=False
    )
    """``_by_key``'s cache: a kind's frame split by key once per batch for every detector (the views the
    engine makes with ``dataclasses.replace`` share this dict), kept beside the frame it split so that a
    view with another frame never reads it."""

    def frame(self, kind: TapeKind) -> pd.DataFrame:
        """The frame of one event kind."""
        return {"trade": self.trades, "quote": self.quotes}.get(kind, self.transfers)


@dataclass
class DetectorOutput:
    """What ``detect`` returns: alerts (``ALERT_SCHEMA`` columns) and metric frames by table name.

    Metric tables are declared in the detector's ``metric_tables`` (frames by table name); frames may have
    any row order. Leave ``ts_written`` null: the router stamps it when the alert is written.
    """

    alerts: pd.DataFrame = field(default_factory=empty_alerts)
    metrics: dict[str, pd.DataFrame] = field(default_factory=dict)

    @staticmethod
    def concat(outputs: list[DetectorOutput]) -> DetectorOutput:
        """Merge several outputs (alerts appended, metric frames of one table appended)."""
        alerts = [o.alerts for o in outputs if len(o.alerts)]
        merged: dict[str, list[pd.DataFrame]] = {}
        for o in outputs:
            for name, frame in o.metrics.items():
                merged.setdefault(name, []).append(frame)
        return DetectorOutput(
            alerts=pd.concat(alerts, ignore_index=True) if alerts else empty_alerts(),
            metrics={n: _appended(fs) for n, fs in merged.items()},
        )


def _appended(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One table's frames appended; empty ones left out, the first kept when all are empty."""
    filled = [f for f in frames if len(f)]
    if not filled:
        return frames[0]
    with warnings.catch_warnings():
        # pandas warns that all-NA columns will take part in choosing a column's dtype; that choice never
        # reaches a table: the engine converts every metric frame with its table's Arrow schema
        warnings.filterwarnings("ignore", "The behavior of DataFrame concatenation", FutureWarning)
        return pd.concat(filled, ignore_index=True)


class BaseDetector(ABC, Generic[S]):
    """A detector module, declared in one place: subclasses set the class variables and implement
    ``detect``. The registry (``pipeline.detectors.registry``) finds every subclass that sets
    ``module_id`` in a module of this package.

    ``module_id``: the registry id (``MOD-001``), also the alerts' ``detector`` value.
    ``name``: the feature name (``whale-detector``); ``description``: one line for listings.
    ``inputs``: the event kinds it reads (``("trade",)``, ``("quote",)`` or both).
    ``scope``: ``instrument`` (run per ``(exchange, symbol)``, on the executors in ``state_store`` mode),
    ``asset`` or ``global`` (docs/DETECTORS.md, "Key scopes").
    ``consumes``: module ids whose alerts of the same micro-batch it reads (``DetectorInput.upstream``);
    it runs after them.
    ``settings_model``: its typed, frozen settings (defaults in ``config/features.yaml``, overrides in a
    tier file); the instance's ``settings`` holds the resolved values.
    ``metric_tables``: the metric tables it writes (``pipeline.tables.TableDef``; the sinks create them).

    Do not keep per-batch state on ``self``.
    """

    module_id: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str] = ""
    inputs: ClassVar[tuple[TapeKind, ...]]
    scope: ClassVar[Scope] = "instrument"
    consumes: ClassVar[tuple[str, ...]] = ()
    settings_model: ClassVar[type[Frozen]] = NoSettings
    metric_tables: ClassVar[tuple[TableDef, ...]] = ()

    def __init__(self, config: Config) -> None:
        self.config = config
        # a module registered after the config was loaded runs with its model's defaults
        self.settings = cast(S, config.settings.get(self.module_id) or self.settings_model())

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "module_id" in vars(cls):
            cls.check_declaration()

    @classmethod
    def check_declaration(cls) -> None:
        """Refuse a class whose declaration is incomplete or inconsistent, naming what to fix."""
        where = f"{cls.__module__}.{cls.__qualname__}"
        for attr in ("module_id", "name", "inputs"):
            if not hasattr(cls, attr):
                raise PipelineError(f"detector {where} does not declare {attr!r}")
        if not cls.module_id.startswith("MOD-"):
            raise PipelineError(f"detector {where}: module_id {cls.module_id!r} must look like MOD-012")
        bad = [k for k in cls.inputs if k not in TAPE_KINDS]
        if bad or (cls.scope == "instrument" and not cls.inputs):
            raise PipelineError(f"detector {where}: inputs {cls.inputs!r} must be a subset of {TAPE_KINDS}, "
                                "non-empty for an instrument-scoped module")
        if cls.scope not in SCOPES:
            raise PipelineError(f"detector {where}: scope {cls.scope!r} is not one of {SCOPES}")
        if cls.scope != "instrument" and not (
            issubclass(cls, CrossDetector) and (cls.consumes or cls.feed is not None)
        ):
            raise PipelineError(f"detector {where}: an {cls.scope}-scoped module is a CrossDetector that "
                                "consumes instrument modules' alerts or declares a feed (pipeline.cross)")
        if issubclass(cls, CrossDetector) and cls.feed is not None:
            feed = cls.feed
            if (feed.module_id != cls.module_id or feed.scope != "instrument" or feed.consumes
                    or feed.metric_tables):
                raise PipelineError(f"detector {where}: its feed {feed.__qualname__} must be an instrument-"
                                    f"scoped KeyedDetector with module_id {cls.module_id!r} that consumes "
                                    "nothing and writes no table")
        if cls.module_id in cls.consumes:
            raise PipelineError(f"detector {where} cannot consume its own alerts")

    @abstractmethod
    def detect(self, frames: DetectorInput) -> DetectorOutput:
        """Alerts and metrics for one batch of valid, annotated events (see the module docstring)."""


class KeyedDetector(BaseDetector[S]):
    """A detector with state per key (windows, baselines). Implement ``new_state`` and ``process_key``.

    The engine sets ``self.states`` (key -> state) before every ``detect`` call and persists it after;
    ``detect`` groups the batch by key and calls ``process_key`` once per key present in the batch, in
    key order, with that key's events in arrival order.
    """

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.states: dict[Key, Any] = {}

    @abstractmethod
    def new_state(self) -> Any:
        """The state of a key never seen before (JSON data, see the module docstring)."""

    @abstractmethod
    def process_key(
        self, key: Key, trades: pd.DataFrame, quotes: pd.DataFrame, state: Any
    ) -> tuple[DetectorOutput, Any]:
        """One key's events of this batch (each frame in arrival order, possibly empty) -> output, state.

        Return the new state (it may be ``state`` mutated in place).
        """

    def detect(self, frames: DetectorInput) -> DetectorOutput:
        """Run ``process_key`` for every key in the batch and merge the outputs."""
        outputs = []
        for key, trades, quotes in _by_key(frames, self.inputs):
            state = self.states.get(key)
            if state is None:
                state = self.new_state()
            out, self.states[key] = self.process_key(key, trades, quotes, state)
            outputs.append(out)
        return DetectorOutput.concat(outputs)


class CrossDetector(BaseDetector[S]):
    """An ``asset`` or ``global`` module: ``pipeline.cross`` hands it, per group (an asset, or ``"*"``),
    the consumed modules' alerts and its own feed rows once every participating instrument's clock is
    past them, in a fixed order; implement ``new_state`` and ``process_group``. Its state per group is
    JSON data."""

    scope: ClassVar[Scope] = "asset"
    inputs: ClassVar[tuple[TapeKind, ...]] = ()
    feed: ClassVar[type[KeyedDetector[Any]] | None] = None
    """The module's instrument half, when alerts are not what it needs: a ``KeyedDetector`` with the
    same ``module_id``, run per key in the instrument stage (on the executors in ``state_store`` mode),
    whose alert rows are **feed rows**: small per-instrument facts (a window's last price), each with
    the ``arrival`` of the event that produced it. They are never written; the stage hands them to
    this module as items with ``detector`` = its own id, under the same release rule as alerts."""

    def detect(self, frames: DetectorInput) -> DetectorOutput:
        """Never called: the engine runs this module in its asset and global stage."""
        raise PipelineError(
            f"{self.module_id} is {self.scope}-scoped: it runs in pipeline.cross, not per key"
        )

    @abstractmethod
    def new_state(self) -> Any:
        """The state of a group never seen before (JSON data)."""

    @abstractmethod
    def process_group(self, group: str, items: pd.DataFrame, state: Any) -> tuple[DetectorOutput, Any]:
        """Released items of one group (``pipeline.cross.ITEM_SCHEMA``: the alert's columns plus
        ``decision_ts`` and ``clock``, integers as pandas ``Int64``; in release order) -> output and the
        group's new state."""


AnyDetector = BaseDetector[Any]
"""A detector of any settings type, where code handles detectors generically (registry, engine)."""


def _by_key(
    frames: DetectorInput, kinds: tuple[TapeKind, ...]
) -> Iterator[tuple[Key, pd.DataFrame, pd.DataFrame]]:
    empty = {k: frames.frame(k).iloc[0:0] for k in ("trade", "quote")}
    groups: dict[TapeKind, dict[Key, pd.DataFrame]] = {}
    keys: set[Key] = set()
    for kind in ("trade", "quote"):
        frame = frames.frame(kind)
        if kind not in kinds or frame.empty:
            groups[kind] = {}
            continue
        cached = frames.key_groups.get(kind)
        if cached is None or cached[0] is not frame:
            cached = frames.key_groups[kind] = (frame, _key_groups(frame))
        groups[kind] = cached[1]
        keys.update(groups[kind])
    for key in sorted(keys):
        # shallow copies: a detector adding a column leaves the next detector's group as it was
        yield (
            key,
            groups["trade"].get(key, empty["trade"]).copy(deep=False),
            groups["quote"].get(key, empty["quote"]).copy(deep=False),
        )


def _key_groups(frame: pd.DataFrame) -> dict[Key, pd.DataFrame]:
    """A non-empty event frame's rows by key, each in the frame's order."""
    exchange, symbol = frame["exchange"], frame["symbol"]
    if (exchange == exchange.iat[0]).all() and (symbol == symbol.iat[0]).all():
        # one key (every per-key run): the frame itself rather than a group, which would copy every
        # column; shallow, so a detector adding a column leaves the batch's frame as it was
        return {(str(exchange.iat[0]), str(symbol.iat[0])): frame.copy(deep=False)}
    return {(str(k[0]), str(k[1])): g for k, g in frame.groupby(["exchange", "symbol"], sort=False)}
