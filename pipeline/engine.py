"""The per-batch engine: parsed records -> annotated events -> detectors -> tables to write.

Topology of a streaming run (``pipeline.runner``)::

    Kinesis source (DataSourceStreamReader, one partition per shard, Arrow batches,
                    records parsed by pipeline.parse on the executors)
      -> foreachBatch: one action (toArrow) brings the batch to the driver
           Engine.process(batch, batch_id)                  sequencer + every enabled detector
           AlertRouter: DynamoDB (alerts, first: latency) then Iceberg (bronze, alerts, metrics,
           quarantine), each skipping a batch it already committed
           Engine.commit(batch_id)                          state saved under the checkpoint

One Spark action per trigger keeps the trigger floor low. There is a single stateful step (the engine's
per-key state), kept by the engine rather than by a Spark stateful operator: no limits on chaining
stateful operators, and a batch run is literally the same call over the whole input with empty state.

Exactly once: the state after batch ``N`` is saved as ``state/<N>.pkl`` under the checkpoint only
after every sink committed ``N``. When Spark re-runs batch ``N`` after a crash, the engine reloads
the state of ``N - 1``, produces the same output (everything is a function of the input and the state),
and the sinks skip what they already hold (Iceberg: batch id in the snapshot summary; DynamoDB:
conditional puts on ``alert_id``).
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

from pipeline.alerts import ALERT_SCHEMA
from pipeline.config import Config
from pipeline.detectors.base import BaseDetector, DetectorInput, DetectorOutput, KeyedDetector
from pipeline.errors import PipelineError
from pipeline.events import QUOTE_SCHEMA, TRADE_SCHEMA
from pipeline.parse import PARSED_SCHEMA
from pipeline.sequencer import Sequencer

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


class Engine:
    """Runs the sequencer and the detectors over one parsed batch at a time, keeping per-key state.

    ``state_dir`` (under the query's checkpoint) makes the state survive restarts; without it the
    state lives in memory only (batch runs, tests).
    """

    def __init__(self, config: Config, detectors: list[BaseDetector], state_dir: Path | None = None) -> None:
        self.config = config
        self.detectors = detectors
        self.state_dir = state_dir
        self.sequencer = Sequencer(config)
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

    def _snapshot(self) -> bytes:
        keyed = {d.module_id: d.states for d in self.detectors if isinstance(d, KeyedDetector)}
        payload = {"format": STATE_FORMAT, "sequencer": self.sequencer.states, "detectors": keyed}
        return pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)

    def _restore(self, blob: bytes | None) -> None:
        payload: dict[str, Any] = (
            pickle.loads(blob) if blob else {"format": STATE_FORMAT, "sequencer": {}, "detectors": {}}
        )
        if payload.get("format") != STATE_FORMAT:
            raise PipelineError(
                f"engine state format {payload.get('format')} is not {STATE_FORMAT}: the checkpoint was "
                "written by another version; start again with a fresh --checkpoint directory"
            )
        self.sequencer.states = payload["sequencer"]
        for det in self.detectors:
            if isinstance(det, KeyedDetector):
                det.states = payload["detectors"].get(det.module_id, {})

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
        """Sequencer and detectors over one ``PARSED_SCHEMA`` batch in arrival order."""
        self._ensure_state_for(batch_id)
        # the sequencer and the detectors update the state in place: until commit() it is ahead of
        # last_batch, and a retry of this batch (a sink failed) must reload it rather than apply it twice
        self._dirty = True
        self._pending = None
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
        self._pending = (batch_id, self._snapshot())
        return BatchResult(
            batch_id=batch_id,
            records_in=table.num_rows,
            valid=valid_tbl.num_rows,
            quarantined=quarantine_tbl.num_rows,
            tables=tables,
        )


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
