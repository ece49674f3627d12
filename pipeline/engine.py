"""The per-batch engine: parsed records -> annotated events -> detectors -> tables to write.

``Engine.run`` is the whole detection logic: the sequencer and every enabled detector over parsed rows
in arrival order, for whatever keys ``(exchange, symbol)`` they hold, starting from those keys'
``EngineState``. Keys never interact, so it serves both topologies of a streaming run
(``spark.keyed_state``, see ``pipeline.runner``):

**driver** (small tier, the default)::

    Kinesis source (one partition per shard, Arrow batches, records parsed by pipeline.parse on
                    the executors; a small batch parsed on the driver and handed over whole)
      -> foreachBatch: one action (toArrow) brings the batch to the driver
           Engine.process(batch, batch_id)                  run() over every key, the engine's state
           AlertRouter: DynamoDB (alerts, first: latency) then Iceberg (bronze, alerts, metrics,
           quarantine), each skipping a batch it already committed
           Engine.commit(batch_id)                          state saved under the checkpoint

**state_store** (medium and large tiers; ``pipeline.keyed``)::

    the same source -> groupBy(exchange, symbol).applyInPandasWithState: per key, run() over the key's
    rows with the key's state from Spark's state store -> per-key tables as Arrow IPC
      -> foreachBatch: one action brings them to the driver -> one BatchResult -> the same AlertRouter

Driver mode keeps the small tier's latency floor low: one Spark action per trigger, no shuffle, no
state-store commit, and a batch run is literally the same call over the whole input with empty state.
Its cost is that every key's state lives on one driver; state-store mode spreads keys and their state
over the executors at the price of a shuffle and a state-store commit per trigger.

Exactly once (driver mode): the state after batch ``N`` is saved as ``state/<N>.json`` under the
checkpoint only after every sink committed ``N``. When Spark re-runs batch ``N`` after a crash, the
engine reloads the state of ``N - 1``, produces the same output (everything is a function of the input
and the state), and the sinks skip what they already hold (Iceberg: batch id in the snapshot summary;
DynamoDB: conditional puts on ``alert_id``). State-store mode gets the same from Spark's versioned
state store. Both store ``EngineState.to_bytes``: a versioned JSON document (``pipeline.versioned_json``),
so a checkpoint on shared storage holds data, never code; a revision reads older formats through its
migrations or refuses them by name (the pickled states of formats 1 and 2 are never read).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import PipelineError
from core.events import CHAINS, QUOTE_SCHEMA, TRADE_SCHEMA, TRANSFER_SCHEMA, TapeKind
from pipeline.alerts import ALERT_SCHEMA
from pipeline.config import Config
from pipeline.cross import CLOCKS, FEED, INTERNAL_TABLES, ROWS, CrossStage, clocks_table, feed_table
from pipeline.detectors.base import (
    ARROW_BACKED,
    AnyDetector,
    DetectorInput,
    DetectorOutput,
    Key,
    KeyedDetector,
    empty_frame,
)
from pipeline.detectors.windows import NO_TIME
from pipeline.onchain import route_transfers
from pipeline.parse import PARSED_SCHEMA, TRANSFER_COLUMNS
from pipeline.sequencer import KeyState, Sequencer
from pipeline.tables import QUARANTINE, bronze_rows, detector_tables, schemas_of
from pipeline.timing import BatchTiming
from pipeline.versioned_json import DocumentFormat, is_json_data, no_cyclic_gc, non_json_at

STATE_DOCUMENT: Final = DocumentFormat(
    kind="coattail.engine-state",
    title="engine state",
    current=3,
    remedy="start again with a fresh --checkpoint directory",
)
"""The engine state's document. Formats 1 and 2 were pickles (never read: they could run code); 3 is
JSON. Bump ``current`` whenever the shape changes and add the migration of the previous format."""
_PICKLED: Final = "1 or 2 (a pickle)"
_KEEP_STATES: Final = 3


@dataclass
class BatchResult:
    """What one batch produced: counts, and one Arrow table per destination table."""

    batch_id: int
    records_in: int
    valid: int
    quarantined: int
    tables: dict[str, pa.Table] = field(default_factory=dict)
    """``trades``, ``quotes``, ``transfers``, ``quarantine``, ``alerts`` and every detector's metric
    tables."""
    timing: BatchTiming | None = None
    """When the batch reached each point of the pipeline (set by the runner once it is routed)."""
    stamps: pa.Table | None = None
    """The events' time stamps (``pipeline.keyed_writes.STAMPS_SCHEMA``) when the executors wrote the
    bronze tables and the driver holds only these (else None: the bronze tables are in ``tables``)."""

    @property
    def alerts(self) -> pa.Table:
        """The batch's alerts (``ALERT_SCHEMA``)."""
        return self.tables["alerts"]


@dataclass
class EngineState:
    """The per-key state of the sequencer and of every ``KeyedDetector``, for any set of keys.

    Driver mode keeps one for every key (saved under the checkpoint after each batch); state-store
    mode keeps one per key in Spark's state store (``pipeline.keyed``). Both use ``to_bytes``.
    """

    sequencer: dict[Key, KeyState] = field(default_factory=dict)
    detectors: dict[str, dict[Key, Any]] = field(default_factory=dict)
    """Module id -> key -> that detector's state of the key (JSON data)."""
    cross: dict[str, Any] = field(default_factory=dict)
    """The asset and global stage's state (JSON data, ``pipeline.cross``); kept by the driver only."""

    def is_empty(self) -> bool:
        """No key has any state (nothing valid was seen)."""
        return not self.sequencer and not any(self.detectors.values()) and not self.cross

    def to_bytes(self) -> bytes:
        """The state as a ``STATE_DOCUMENT`` JSON document: keys as ``[exchange, symbol, state]`` entries
        (a symbol may hold any character). ``PipelineError`` naming the module when a detector's state
        is not JSON data (it would come back different after a restart)."""
        detectors: dict[str, list[list[Any]]] = {}
        with no_cyclic_gc():
            for module_id, by_key in self.detectors.items():
                entries = [[exchange, symbol, state] for (exchange, symbol), state in by_key.items()]
                try:
                    valid = is_json_data(entries)
                except RecursionError:
                    valid = False
                if not valid:
                    raise self._not_json(module_id, by_key)
                detectors[module_id] = entries
            if not is_json_data(self.cross):
                at = non_json_at(self.cross)
                raise PipelineError(f"the asset and global stage keeps a state that is not JSON data: {at}")
            sequencer = [[ex, sym, ks.to_json()] for (ex, sym), ks in self.sequencer.items()]
            return STATE_DOCUMENT.encode(
                {"sequencer": sequencer, "detectors": detectors, "cross": self.cross}
            )

    @classmethod
    def from_bytes(cls, blob: bytes | None, where: str = "saved state") -> EngineState:
        """The state ``to_bytes`` wrote (empty for ``None``); ``PipelineError`` naming ``where`` for a
        state this revision does not read (another format, a pickle, not a state)."""
        if not blob:
            return cls()
        if blob.startswith(b"\x80"):  # every pickle protocol since 2 starts so; JSON never does
            raise STATE_DOCUMENT.refusal(where, _PICKLED, "an earlier revision")
        payload = STATE_DOCUMENT.decode(blob, where)
        try:
            return cls(
                sequencer={cls._key(e): KeyState.from_json(e[2]) for e in payload["sequencer"]},
                detectors={
                    module_id: {cls._key(e): e[2] for e in entries}
                    for module_id, entries in payload["detectors"].items()
                },
                cross=payload["cross"],
            )
        except (KeyError, TypeError, ValueError, AttributeError, PipelineError) as e:
            raise PipelineError(
                f"{where}: a malformed {STATE_DOCUMENT.title} ({e}); {STATE_DOCUMENT.remedy}"
            ) from e

    @staticmethod
    def _key(entry: Any) -> Key:
        """The key of an ``[exchange, symbol, state]`` entry."""
        if type(entry) is not list or len(entry) != 3 or not type(entry[0]) is type(entry[1]) is str:
            raise ValueError(f"{entry!r:.80} is not an [exchange, symbol, state] entry")
        return entry[0], entry[1]

    @staticmethod
    def _not_json(module_id: str, by_key: dict[Key, Any]) -> PipelineError:
        """The error for a detector whose state is not JSON data, saying where."""
        for key, state in by_key.items():
            try:
                at = non_json_at(state)
            except RecursionError:
                at = "it is nested too deeply (or refers to itself)"
            if at:
                return PipelineError(
                    f"detector {module_id} keeps a state for {key} that is not JSON data: {at}. A "
                    "KeyedDetector's state holds only dicts with str keys, lists, str, int, float, bool "
                    "and None (pipeline/detectors/base.py)"
                )
        return PipelineError(f"detector {module_id} keeps state under keys that are not two strings")


class Engine:
    """Runs the sequencer and the detectors over one parsed batch at a time, keeping per-key state.

    ``state_dir`` (under the query's checkpoint) makes the state survive restarts; without it the
    state lives in memory only (batch runs, tests).
    """

    def __init__(self, config: Config, detectors: list[AnyDetector], state_dir: Path | None = None) -> None:
        self.config = config
        self.detectors = detectors
        self.instrument_detectors = [d for d in detectors if d.scope == "instrument"]
        self.cross = CrossStage(config, [d for d in detectors if d.scope != "instrument"])
        self.state_dir = state_dir
        self.sequencer = Sequencer(config)
        self.state = EngineState()
        self.last_batch: int | None = None
        self._pending: tuple[int, bytes] | None = None
        # process() changed the in-memory state and no commit() followed: it is no longer the state
        # after last_batch, so the next batch must reload the saved one
        self._dirty = False

    def metric_schemas(self) -> dict[str, pa.Schema]:
        """Every metric table the enabled detectors write, by name."""
        return schemas_of(detector_tables(self.detectors))

    # --- state ------------------------------------------------------------------------------------

    @staticmethod
    def holds_state(state_dir: Path) -> bool:
        """``state_dir`` holds a saved engine state (of this or an earlier revision)."""
        return any(state_dir.glob("*.json")) or any(state_dir.glob("*.pkl"))

    def _restore(self, path: Path | None) -> None:
        self.state = EngineState.from_bytes(path.read_bytes(), str(path)) if path else EngineState()

    def _ensure_state_for(self, batch_id: int) -> None:
        """Make the in-memory state the state after ``batch_id - 1``."""
        if not self._dirty and self.last_batch == batch_id - 1:
            return
        if batch_id == 0:
            self._restore(None)
        elif self.state_dir is None:
            if not self._dirty and self.last_batch is None:
                return
            raise PipelineError(
                f"batch {batch_id} after batch {self.last_batch}"
                f"{' and a failed batch' if self._dirty else ''} without a state directory to reload"
            )
        elif (path := self.state_dir / f"{batch_id - 1}.json").exists():
            self._restore(path)
        elif pickled := sorted(self.state_dir.glob("*.pkl")):
            # never unpickled: a checkpoint on shared storage could run code through it
            raise STATE_DOCUMENT.refusal(str(pickled[-1]), _PICKLED, "an earlier revision")
        elif not any(self.state_dir.glob("*.json")):
            raise PipelineError(
                f"no engine state in {self.state_dir} for batch {batch_id - 1}: the checkpoint's state "
                "directory is missing or empty; delete the checkpoint directory to start over"
            )
        else:
            raise PipelineError(
                f"no engine state for batch {batch_id - 1} in {self.state_dir}: the checkpoint is "
                "incomplete; start again with a fresh --checkpoint directory"
            )
        self._dirty = False

    def commit(self, batch_id: int) -> None:
        """Persist the state after ``batch_id`` (call once every sink committed the batch): written to a
        temporary file and renamed, so a crash leaves the previous states whole; the last
        ``_KEEP_STATES`` are kept."""
        if self._pending is None or self._pending[0] != batch_id:
            raise PipelineError(f"commit of batch {batch_id} that was not processed last")
        if self.state_dir is not None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.state_dir / f".{batch_id}.json.tmp"
            tmp.write_bytes(self._pending[1])
            os.replace(tmp, self.state_dir / f"{batch_id}.json")
            for old in self.state_dir.glob("*.json"):
                if int(old.stem) <= batch_id - _KEEP_STATES:
                    old.unlink(missing_ok=True)
        self.last_batch = batch_id
        self._pending = None
        self._dirty = False

    # --- processing -------------------------------------------------------------------------------

    def process(self, parsed: pa.Table | pa.RecordBatch, batch_id: int) -> BatchResult:
        """``run`` over one ``PARSED_SCHEMA`` batch in arrival order with the engine's own state (driver
        mode: every key of the batch); ``commit`` persists the state it leaves."""
        self._ensure_state_for(batch_id)
        # run() updates the state in place: until commit() it is ahead of last_batch, and a retry of
        # this batch (a sink failed) must reload it rather than apply it twice
        self._dirty = True
        self._pending = None
        result = self.run(parsed, batch_id, self.state)
        self.run_cross(result, self.state)
        self._pending = (batch_id, self.state.to_bytes())
        return result

    def process_assembled(self, result: BatchResult) -> BatchResult:
        """State-store mode's driver step: the asset and global stage over a batch whose instrument stage
        ran per key on the executors (``pipeline.keyed.assemble``), with the engine's own cross state;
        ``commit`` persists it. Without asset or global modules it only drops the internal tables."""
        if not self.cross.active:
            self.run_cross(result, self.state)
            return result
        self._ensure_state_for(result.batch_id)
        self._dirty = True
        self._pending = None
        self.run_cross(result, self.state)
        self._pending = (result.batch_id, self.state.to_bytes())
        return result

    def run_cross(self, result: BatchResult, state: EngineState) -> None:
        """The asset and global stage (``pipeline.cross``) over one batch's instrument-stage result, in
        place: its alerts and metrics join the result's, and the internal tables leave it."""
        if self.cross.active:
            out = self.cross.run(result.tables, state.cross)
            alerts = pa.Table.from_pandas(
                out.alerts[ALERT_SCHEMA.names], schema=ALERT_SCHEMA, preserve_index=False
            )
            result.tables["alerts"] = pa.concat_tables([result.tables["alerts"], alerts])
            for name, frame in out.metrics.items():
                schema = result.tables[name].schema
                extra = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
                result.tables[name] = pa.concat_tables([result.tables[name], extra])
        for name in INTERNAL_TABLES:
            result.tables.pop(name, None)

    def run(
        self, parsed: pa.Table | pa.RecordBatch, batch_id: int, state: EngineState, *, bronze: bool = True
    ) -> BatchResult:
        """Sequencer and detectors over ``PARSED_SCHEMA`` rows in arrival order, starting from ``state``
        (updated in place), for whatever keys the rows hold. ``bronze=False`` leaves the bronze tables
        (``trades``, ``quotes``, ``transfers``) out of the result, for a caller that writes none.

        The one piece of detection logic of both modes: the driver calls it with every key of a batch
        and the state of every key; the state-store mode (``pipeline.keyed``) with one key's rows and
        that key's state. Keys never interact, so the union of the per-key results is the all-key result.
        """
        self.sequencer.states = state.sequencer
        for det in [*self.detectors, *self.cross.feeds]:
            if isinstance(det, KeyedDetector):
                det.states = state.detectors.setdefault(det.module_id, {})
        table = parsed if isinstance(parsed, pa.Table) else pa.Table.from_batches([parsed])
        table = table.select(PARSED_SCHEMA.names).cast(PARSED_SCHEMA)
        table = route_transfers(table, self.config.tokens, self.config.instruments)
        table = table.append_column("arrival", pa.array(range(table.num_rows), type=pa.int64()))
        bad = pc.is_valid(table.column("reason"))
        # a filter copies every column (strings too): a batch with nothing to split is taken as it is
        any_bad = pc.any(bad).as_py()
        valid_tbl = table.filter(pc.invert(bad)) if any_bad else table
        quarantine_tbl = table.filter(bad) if any_bad else table.slice(0, 0)
        events = _event_frame(valid_tbl)
        is_transfer = (events["kind"] == "transfer").to_numpy(dtype=bool)
        if is_transfer.any():
            events, transfer_rows = events[~is_transfer], events[is_transfer]
        else:
            transfer_rows = events.iloc[:0]
        before = {key: ks.max_ts for key, ks in state.sequencer.items()}
        trades, quotes = self.sequencer.annotate(events)
        trades = _typed(trades, TRADE_SCHEMA, "trade_id")
        quotes = _typed(quotes, QUOTE_SCHEMA, "update_id")
        transfers = _transfers(transfer_rows, trades, quotes, before)
        frames = DetectorInput(
            trades=trades, quotes=quotes, batch_id=batch_id,
            quarantine=quarantine_tbl.to_pandas() if any_bad else empty_frame(quarantine_tbl.schema),
            transfers=transfers,
        )
        outputs: list[DetectorOutput] = []
        upstream: dict[str, pd.DataFrame] = {}
        for det in self.instrument_detectors:  # in run order: what a module consumes ran before it
            view = replace(frames, upstream={m: upstream[m] for m in det.consumes})
            out = det.detect(view)
            upstream[det.module_id] = out.alerts
            outputs.append(out)
        output = DetectorOutput.concat(outputs)
        kinds: dict[str, TapeKind] = {"trades": "trade", "quotes": "quote", "transfers": "transfer"}
        tables = {
            **{name: bronze_rows(valid_tbl, kind) for name, kind in kinds.items() if bronze},
            "quarantine": QUARANTINE.conform(quarantine_tbl),
            "alerts": pa.Table.from_pandas(
                output.alerts[ALERT_SCHEMA.names], schema=ALERT_SCHEMA, preserve_index=False
            ),
        }
        if self.cross.active:
            # the asset modules' instrument halves: what they publish feeds the stage, never a table
            fed = DetectorOutput.concat([feed.detect(frames) for feed in self.cross.feeds]).alerts
            tables[ROWS] = pa.Table.from_pandas(
                fed[ALERT_SCHEMA.names], schema=ALERT_SCHEMA, preserve_index=False
            )
            published = pd.concat([output.alerts, fed], ignore_index=True) if len(fed) else output.alerts
            tables[FEED] = feed_table(published, (trades, quotes, transfers), self.cross.consumed)
            keys = events[["exchange", "symbol"]].drop_duplicates().itertuples(index=False, name=None)
            tables[CLOCKS] = clocks_table({key: int(state.sequencer[key].max_ts) for key in keys})
        for name, schema in self.metric_schemas().items():
            frame = output.metrics.get(name)
            tables[name] = (
                schema.empty_table()
                if frame is None
                else pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
            )
        return BatchResult(
            batch_id=batch_id,
            records_in=table.num_rows,
            valid=valid_tbl.num_rows,
            quarantined=quarantine_tbl.num_rows,
            tables=tables,
        )


def arrival_order(table: pa.Table) -> pa.Array:
    """Indices that put ``PARSED_SCHEMA`` or bronze rows in arrival order: ``(shard_id, sequence_number
    as a number, sub_sequence)``.

    On Kinesis that is each shard's order, shards in id order (a key lives on one shard; after a split
    or merge the child, which has the larger id, is read only once its parents are done); the sources
    list their partitions in that same order, so it is also the order of a collected batch. The tape
    source numbers its rows in tape order on one shard ``"tape"``. Sequence numbers are decimal strings
    of up to 56 digits (too long for an int64): without their leading zeros, the shorter is the smaller
    number and two of one length compare as text, so they sort as numbers with no conversion.
    """
    digits = pc.ascii_ltrim(pc.fill_null(table.column("sequence_number"), ""), characters="0")
    keys = pa.table({
        "shard_id": table.column("shard_id"),
        "_digits": pc.binary_length(digits),
        "_seq": digits,
        "sub": table.column("sub_sequence"),
    })  # fmt: skip
    return pc.sort_indices(keys, sort_keys=[(name, "ascending") for name in keys.column_names])


def _event_frame(valid: pa.Table) -> pd.DataFrame:
    """Valid parsed rows as the frame the sequencer takes: int64 as pandas ``Int64``, and the transport
    strings (``ARROW_BACKED``) kept in Arrow rather than made into a Python string per row (a day's
    sequence numbers cost more than every other column together)."""
    frame = valid.drop_columns(list(ARROW_BACKED)).to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    for name in ARROW_BACKED:
        strings = pd.arrays.ArrowExtensionArray(valid.column(name))
        frame.insert(valid.schema.get_field_index(name), name, strings)
    return frame


def _transfers(
    rows: pd.DataFrame, trades: pd.DataFrame, quotes: pd.DataFrame, before: dict[Key, float]
) -> pd.DataFrame:
    """The batch's valid transfers (keyed by ``route_transfers``), typed, each with its ``clock``: the
    clock of its key (an instrument) once it arrived, i.e. of the key's last market event that arrived
    before it, else the key's clock before the batch (``NO_TIME`` before its first); its own ``ts_event``
    on a key that is no instrument (``(chain, asset)``: a transfer without a reference instrument)."""
    frame = _typed(rows, TRANSFER_SCHEMA, "log_index")
    frame["block"] = frame["block"].astype("int64")
    clock = frame["ts_event"].to_numpy(dtype=np.int64).copy()
    # without transfers (every batch of a tier without on-chain inputs) no key's events are looked at
    sources = (trades, quotes) if len(frame) else ()
    parts = [f[["exchange", "symbol", "arrival", "clock"]] for f in sources if len(f)]
    groups: dict[Any, pd.DataFrame] = (
        dict(iter(pd.concat(parts).groupby(["exchange", "symbol"], sort=False))) if parts else {}
    )
    for (exchange, symbol), index in frame.groupby(["exchange", "symbol"], sort=False).indices.items():
        key = (str(exchange), str(symbol))
        if key[0] in CHAINS:
            continue
        prior = before.get(key, np.nan)
        arrivals = frame["arrival"].to_numpy(dtype=np.int64)[index]
        known = np.full(len(index), prior)
        events = groups.get(key)
        if events is not None:
            events = events.sort_values("arrival")
            at = np.searchsorted(events["arrival"].to_numpy(dtype=np.int64), arrivals) - 1
            clocks = events["clock"].to_numpy(dtype=np.float64)
            known = np.where(at >= 0, clocks[np.maximum(at, 0)], known)
        clock[index] = np.where(np.isnan(known), NO_TIME, known).astype(np.int64)
    frame["clock"] = clock
    return frame


def _typed(frame: pd.DataFrame, schema: pa.Schema, id_column: str) -> pd.DataFrame:
    """Drop the other kinds' columns and give the id its non-null integer type."""
    other = {
        "trade_id", "price", "qty", "side", "bid_px", "bid_qty", "ask_px", "ask_qty", "update_id",
        *TRANSFER_COLUMNS,
    }
    drop = [c for c in other - set(schema.names) if c in frame.columns]
    frame = frame.drop(columns=[*drop, "kind", "reason", "raw"])
    frame[id_column] = frame[id_column].astype("int64")
    frame["ts_event"] = frame["ts_event"].astype("int64")
    return frame
