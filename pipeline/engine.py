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

Exactly once (driver mode): the state after batch ``N`` is saved as ``state/<N>.pkl`` under the
checkpoint only after every sink committed ``N``. When Spark re-runs batch ``N`` after a crash, the
engine reloads the state of ``N - 1``, produces the same output (everything is a function of the input
and the state), and the sinks skip what they already hold (Iceberg: batch id in the snapshot summary;
DynamoDB: conditional puts on ``alert_id``). State-store mode gets the same from Spark's versioned
state store.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import PipelineError
from core.events import QUOTE_SCHEMA, TRADE_SCHEMA
from pipeline.alerts import ALERT_SCHEMA
from pipeline.config import Config
from pipeline.detectors.base import (
    AnyDetector,
    DetectorInput,
    DetectorOutput,
    Key,
    KeyedDetector,
)
from pipeline.parse import PARSED_SCHEMA
from pipeline.sequencer import KeyState, Sequencer

TRANSPORT_COLUMNS: Final = ("ts_sent", "ts_ingest", "shard_id", "sequence_number", "sub_sequence")
TRADES_TABLE_SCHEMA: Final = pa.schema(
    list(TRADE_SCHEMA) + [PARSED_SCHEMA.field(n) for n in TRANSPORT_COLUMNS]
)
QUOTES_TABLE_SCHEMA: Final = pa.schema(
    list(QUOTE_SCHEMA) + [PARSED_SCHEMA.field(n) for n in TRANSPORT_COLUMNS]
)
QUARANTINE_SCHEMA: Final = pa.schema(
    [PARSED_SCHEMA.field(n) for n in ("reason", "raw", "kind", "exchange", "symbol", "ts_event")]
    + [PARSED_SCHEMA.field(n) for n in ("ts_ingest", "shard_id", "sequence_number", "sub_sequence")]
)
STATE_FORMAT: Final = 2
"""Bumped whenever the pickled state changes shape (2: trade ids as exact ints)."""
_KEEP_STATES: Final = 3


@dataclass
class BatchResult:
    """What one batch produced: counts, and one Arrow table per destination table."""

    batch_id: int
    records_in: int
    valid: int
    quarantined: int
    tables: dict[str, pa.Table] = field(default_factory=dict)
    """``trades``, ``quotes``, ``quarantine``, ``alerts`` and every detector's metric tables."""

    @property
    def alerts(self) -> pa.Table:
        """The batch's alerts (``ALERT_SCHEMA``)."""
        return self.tables["alerts"]


@dataclass
class EngineState:
    """The per-key state of the sequencer and of every ``KeyedDetector``, for any set of keys.

    Driver mode keeps one for every key (pickled under the checkpoint after each batch); state-store
    mode keeps one per key in Spark's state store (``pipeline.keyed``). Both use ``to_bytes``.
    """

    sequencer: dict[Key, KeyState] = field(default_factory=dict)
    detectors: dict[str, dict[Key, Any]] = field(default_factory=dict)
    """Module id -> key -> that detector's state of the key."""

    def is_empty(self) -> bool:
        """No key has any state (nothing valid was seen)."""
        return not self.sequencer and not any(self.detectors.values())

    def to_bytes(self) -> bytes:
        """The state as a versioned pickle."""
        payload = {"format": STATE_FORMAT, "sequencer": self.sequencer, "detectors": self.detectors}
        return pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, blob: bytes | None) -> EngineState:
        """The state ``to_bytes`` wrote (empty for ``None``); ``PipelineError`` for another format."""
        if not blob:
            return cls()
        payload: dict[str, Any] = pickle.loads(blob)
        if payload.get("format") != STATE_FORMAT:
            raise PipelineError(
                f"engine state format {payload.get('format')} is not {STATE_FORMAT}: the checkpoint was "
                "written by another version; start again with a fresh --checkpoint directory"
            )
        return cls(sequencer=payload["sequencer"], detectors=payload["detectors"])


class Engine:
    """Runs the sequencer and the detectors over one parsed batch at a time, keeping per-key state.

    ``state_dir`` (under the query's checkpoint) makes the state survive restarts; without it the
    state lives in memory only (batch runs, tests).
    """

    def __init__(self, config: Config, detectors: list[AnyDetector], state_dir: Path | None = None) -> None:
        self.config = config
        self.detectors = detectors
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
        out: dict[str, pa.Schema] = {}
        for det in self.detectors:
            out.update(det.metric_schemas)
        return out

    # --- state ------------------------------------------------------------------------------------

    def _restore(self, blob: bytes | None) -> None:
        self.state = EngineState.from_bytes(blob)

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
        elif (path := self.state_dir / f"{batch_id - 1}.pkl").exists():
            self._restore(path.read_bytes())
        elif not any(self.state_dir.glob("*.pkl")):
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
        """Persist the state after ``batch_id`` (call once every sink committed the batch)."""
        if self._pending is None or self._pending[0] != batch_id:
            raise PipelineError(f"commit of batch {batch_id} that was not processed last")
        if self.state_dir is not None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.state_dir / f".{batch_id}.pkl.tmp"
            tmp.write_bytes(self._pending[1])
            os.replace(tmp, self.state_dir / f"{batch_id}.pkl")
            for old in self.state_dir.glob("*.pkl"):
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
        self._pending = (batch_id, self.state.to_bytes())
        return result

    def run(self, parsed: pa.Table | pa.RecordBatch, batch_id: int, state: EngineState) -> BatchResult:
        """Sequencer and detectors over ``PARSED_SCHEMA`` rows in arrival order, starting from ``state``
        (updated in place), for whatever keys the rows hold.

        The one piece of detection logic of both modes: the driver calls it with every key of a batch
        and the state of every key; the state-store mode (``pipeline.keyed``) with one key's rows and
        that key's state. Keys never interact, so the union of the per-key results is the all-key result.
        """
        self.sequencer.states = state.sequencer
        for det in self.detectors:
            if isinstance(det, KeyedDetector):
                det.states = state.detectors.setdefault(det.module_id, {})
        table = parsed if isinstance(parsed, pa.Table) else pa.Table.from_batches([parsed])
        table = table.select(PARSED_SCHEMA.names).cast(PARSED_SCHEMA)
        table = table.append_column("arrival", pa.array(range(table.num_rows), type=pa.int64()))
        bad = pc.is_valid(table.column("reason"))
        valid_tbl = table.filter(pc.invert(bad))
        quarantine_tbl = table.filter(bad)
        events = valid_tbl.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
        trades, quotes = self.sequencer.annotate(events)
        trades = _typed(trades, TRADE_SCHEMA, "trade_id")
        quotes = _typed(quotes, QUOTE_SCHEMA, "update_id")
        frames = DetectorInput(
            trades=trades, quotes=quotes, quarantine=quarantine_tbl.to_pandas(), batch_id=batch_id
        )
        output = DetectorOutput.concat([det.detect(frames) for det in self.detectors])
        tables = {
            "trades": _bronze(valid_tbl, "trade", TRADES_TABLE_SCHEMA),
            "quotes": _bronze(valid_tbl, "quote", QUOTES_TABLE_SCHEMA),
            "quarantine": quarantine_tbl.select(QUARANTINE_SCHEMA.names).cast(QUARANTINE_SCHEMA),
            "alerts": pa.Table.from_pandas(output.alerts, schema=ALERT_SCHEMA, preserve_index=False),
        }
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
    of up to 56 digits (too long for an int64): left-padded to 72 digits and cut into four 18-digit
    integers, they sort as numbers.
    """
    padded = pc.utf8_lpad(pc.fill_null(table.column("sequence_number"), ""), width=72, padding="0")
    parts = {
        f"_seq{i}": pc.cast(pc.utf8_slice_codeunits(padded, 18 * i, 18 * (i + 1)), pa.int64())
        for i in range(4)
    }
    keys = pa.table({"shard_id": table.column("shard_id"), **parts, "sub": table.column("sub_sequence")})
    return pc.sort_indices(keys, sort_keys=[(name, "ascending") for name in keys.column_names])


def _typed(frame: pd.DataFrame, schema: pa.Schema, id_column: str) -> pd.DataFrame:
    """Drop the other kind's columns and give the id its non-null integer type."""
    other = {"trade_id", "price", "qty", "side", "bid_px", "bid_qty", "ask_px", "ask_qty", "update_id"}
    drop = [c for c in other - set(schema.names) if c in frame.columns]
    frame = frame.drop(columns=[*drop, "kind", "reason", "raw"])
    frame[id_column] = frame[id_column].astype("int64")
    frame["ts_event"] = frame["ts_event"].astype("int64")
    return frame


def _bronze(valid: pa.Table, kind: str, schema: pa.Schema) -> pa.Table:
    rows = valid.filter(pc.equal(valid.column("kind"), kind))
    return rows.select(schema.names).cast(schema)
