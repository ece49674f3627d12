"""State-store mode: the engine runs per key on the executors, each key's state in Spark's state store.

The plan (``keyed_plan``; ``pipeline.runner`` appends the foreachBatch)::

    parsed source (PARSED_SCHEMA rows)
      -> mapInArrow(pack_by_key)                       per Arrow batch: one row per key present,
                                                       (exchange or "", symbol or "", its rows as IPC)
      -> groupBy(exchange, symbol)                     unreadable records (null exchange/symbol) form
                                                       the key MOD-004 counts them under
      -> applyInPandasWithState(KeyedStep)             per key: its rows put in arrival order, the
                                                       key's EngineState restored, Engine.run, stored
      -> rows (exchange, symbol, table, rows, payload)  one per non-empty result table of the key
                                                       (Arrow IPC) plus a ``__records__`` row (its count)
      -> foreachBatch (driver): ``assemble`` -> BatchResult -> AlertRouter, as in driver mode; with
                                Spark's table writer the driver collects only the alerts, the cross
                                stage's rows and the counts, and the executors append the bronze and
                                per-instrument tables (``pipeline.keyed_writes``)

Rows travel through the shuffle packed per key as Arrow IPC: the types stay exact (Spark hands pandas
a nullable int64 column as float64, which would lose trade ids beyond 2**53) and the shuffle and the
pandas hand-over carry a few large values per key instead of every row's columns.

``Engine.run`` is the only detection code of both modes: keys never interact (the sequencer, every
detector and MOD-004's grouping are per key), so the union of per-key results is the all-key result of
driver mode, row for row. A module that reads several keys at once (asset or global scope) runs after
this step, on the driver (``pipeline.cross``). Each key's rows are sorted by
``pipeline.engine.arrival_order`` (shard id, sequence number as a number, sub-sequence), which is the
order of the batch driver mode collects: on Kinesis a key lives on one shard and partitions come in
shard-id order; the tape source numbers its rows in tape order.

Exactly once: Spark versions the state store by batch, so a batch re-run after a crash starts again
from the state of the batch before, produces the same rows, and the sinks skip what they already hold
(Iceberg: batch id in the snapshot; DynamoDB: conditional puts on ``alert_id``). The driver keeps no
per-key state in this mode; only the asset and global stage's state, when such a module is enabled, is
saved by the driver under the checkpoint's ``cross-state/``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import PipelineError
from pipeline.arrow_ipc import from_ipc, to_ipc
from pipeline.config import Config
from pipeline.detectors.base import AnyDetector
from pipeline.engine import BatchResult, Engine, EngineState, arrival_order
from pipeline.onchain import route_transfers
from pipeline.parse import PARSED_SCHEMA
from pipeline.tables import BRONZE, QUARANTINE

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.streaming.state import GroupState

PACKED_DDL: Final = "exchange string, symbol string, rows binary"
"""One key's rows of one Arrow batch of the source, as an Arrow IPC stream (``PARSED_SCHEMA``)."""
OUTPUT_DDL: Final = "exchange string, symbol string, table string, rows bigint, payload binary"
"""One row per key and non-empty result table: the table's rows as an Arrow IPC stream."""
STATE_DDL: Final = "engine binary"
"""The key's ``EngineState.to_bytes()``: a versioned JSON document, as UTF-8 bytes (data, never code)."""
RECORDS: Final = "__records__"
"""Pseudo table of the row giving the number of records the key received (``rows``; no payload)."""
_PACKED_SCHEMA: Final = pa.schema([("exchange", pa.string()), ("symbol", pa.string()), ("rows", pa.binary())])


def keyed_plan(parsed: DataFrame, config: Config, detectors: Sequence[AnyDetector]) -> DataFrame:
    """``parsed`` (``PARSED_SCHEMA`` rows, streaming) -> the per-key results (``OUTPUT_DDL`` rows)."""
    from pyspark.sql.streaming.state import GroupStateTimeout

    packed = parsed.mapInArrow(partial(pack_by_key, config=config), PACKED_DDL)
    return packed.groupBy("exchange", "symbol").applyInPandasWithState(
        KeyedStep(config, detectors), OUTPUT_DDL, STATE_DDL, "append", GroupStateTimeout.NoTimeout
    )


def pack_by_key(batches: Iterable[pa.RecordBatch], config: Config | None = None) -> Iterator[pa.RecordBatch]:
    """Each ``PARSED_SCHEMA`` batch -> one ``PACKED_DDL`` row per key present in it.

    The key of a record whose exchange or symbol is unreadable (null) is ``""`` in its place, as
    MOD-004 names it in ``dq_metrics``. With ``config``, valid transfers are keyed first
    (``pipeline.onchain.route_transfers``), so they meet their asset's reference instrument.
    """
    for batch in batches:
        if not batch.num_rows:
            continue
        table = pa.Table.from_batches([batch]).select(PARSED_SCHEMA.names).cast(PARSED_SCHEMA)
        if config is not None:
            table = route_transfers(table, config.tokens, config.instruments)
        keys = pa.table({
            "exchange": pc.fill_null(table.column("exchange"), ""),
            "symbol": pc.fill_null(table.column("symbol"), ""),
            "row": pa.array(range(table.num_rows), type=pa.int64()),
        })
        groups = keys.group_by(["exchange", "symbol"], use_threads=False).aggregate([("row", "list")])
        rows = groups.column("row_list").combine_chunks()
        blobs = [to_ipc(table.take(rows[i].values)) for i in range(len(rows))]
        yield pa.RecordBatch.from_arrays(
            [groups.column("exchange").combine_chunks(), groups.column("symbol").combine_chunks(),
             pa.array(blobs, type=pa.binary())],
            schema=_PACKED_SCHEMA,
        )


class KeyedStep:
    """The function ``applyInPandasWithState`` calls once per key and batch (pickled to the executors).

    ``step`` is the pure part (rows and state bytes in, output rows and state bytes out); ``__call__``
    adapts it to Spark's pandas frames and ``GroupState``.
    """

    def __init__(self, config: Config, detectors: Sequence[AnyDetector]) -> None:
        self.config = config
        self.detectors = list(detectors)
        self._engine: Engine | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "detectors": self.detectors, "_engine": None}

    @property
    def engine(self) -> Engine:
        """The engine, built once per executor-side copy (no state directory: state comes per call)."""
        if self._engine is None:
            self._engine = Engine(self.config, self.detectors)
        return self._engine

    def __call__(
        self, key: Any, frames: Iterable[pd.DataFrame], state: GroupState
    ) -> Iterable[pd.DataFrame]:
        """Spark's entry point: the key's packed rows of the batch (``PACKED_DDL``) and its state."""
        rows = unpack([blob for frame in frames for blob in frame["rows"]])
        before: bytes | None = bytes(state.get[0]) if state.exists else None
        out, after = self.step((str(key[0]), str(key[1])), rows, before)
        if after is not None and after != before:
            state.update((after,))
        yield out

    def step(
        self, key: tuple[str, str], rows: pa.Table, state: bytes | None
    ) -> tuple[pd.DataFrame, bytes | None]:
        """One key's ``PARSED_SCHEMA`` rows of a batch (any order) and its state bytes (``None``: new key)
        -> its ``OUTPUT_DDL`` rows and new state bytes (``None`` while the key has no state)."""
        engine_state = EngineState.from_bytes(state, f"Spark's state store, key {key}")
        ordered = rows.take(arrival_order(rows))
        # Spark does not tell a grouped function its batch id; detectors use it for logging only
        result = self.engine.run(ordered, 0, engine_state)
        names, counts, payloads = [RECORDS], [result.records_in], [b""]
        for name, table in result.tables.items():
            if table.num_rows:
                names.append(name)
                counts.append(table.num_rows)
                payloads.append(to_ipc(table))
        out = pd.DataFrame({
            "exchange": key[0], "symbol": key[1], "table": names, "rows": counts, "payload": payloads,
        })
        return out, None if engine_state.is_empty() else engine_state.to_bytes()


def unpack(blobs: Sequence[bytes]) -> pa.Table:
    """The ``PARSED_SCHEMA`` rows of ``pack_by_key``'s IPC blobs, concatenated (in any order)."""
    if not blobs:
        return PARSED_SCHEMA.empty_table()
    return pa.concat_tables([from_ipc(blob) for blob in blobs])


def assemble(
    output: pa.Table, batch_id: int, schemas: Mapping[str, pa.Schema], elsewhere: Collection[str] = ()
) -> BatchResult:
    """The per-key results of one batch (``OUTPUT_DDL`` rows) -> one ``BatchResult``, keys in order.

    ``schemas``: every table the pipeline writes (missing ones come back empty). ``elsewhere``: tables
    the executors write (``pipeline.keyed_writes``): only counted, left out of the result's tables; a
    payload they still carry is their rows' time stamps, which become the result's ``stamps``. Refuses a
    result whose counts do not add up: records in = valid (trades + quotes + transfers) + quarantined.
    """
    ordered = output.take(pc.sort_indices(output, [("exchange", "ascending"), ("symbol", "ascending")]))
    parts: dict[str, list[pa.Table]] = {name: [] for name in schemas if name not in elsewhere}
    counts: dict[str, int] = {}
    stamps: list[pa.Table] = []
    records_in = 0
    for name, count, payload in zip(
        ordered.column("table").to_pylist(), ordered.column("rows").to_pylist(),
        ordered.column("payload").to_pylist(), strict=True,
    ):
        if name == RECORDS:
            records_in += int(count)
        elif name in parts:
            parts[name].append(from_ipc(payload))
        elif name not in schemas:
            raise PipelineError(f"batch {batch_id}: a key returned rows for an unknown table {name!r}")
        elif payload is not None:
            stamps.append(from_ipc(payload))
        counts[name] = counts.get(name, 0) + int(count)
    tables = {
        name: pa.concat_tables(tbls) if tbls else schemas[name].empty_table() for name, tbls in parts.items()
    }
    valid = sum(counts.get(t.name, 0) for t in BRONZE.values())
    quarantined = counts.get(QUARANTINE.name, 0)
    if records_in != valid + quarantined:
        raise PipelineError(
            f"batch {batch_id}: {records_in} records in but {valid} valid + {quarantined} quarantined "
            "came back from the keyed state step"
        )
    return BatchResult(batch_id=batch_id, records_in=records_in, valid=valid, quarantined=quarantined,
                       tables=tables, stamps=pa.concat_tables(stamps) if stamps else None)
