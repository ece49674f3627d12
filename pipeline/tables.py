"""Every table the pipeline writes, defined once: name, Arrow schema, partitioning, identity key.

The Iceberg sink creates tables from these definitions, ``coattail up`` provisions them (and the DynamoDB
alerts table from ``DynamoTableDef``), the loader and the reprocessor write their rows through them and
the run capture reads them back by them. The fixed tables live here; a detector declares its metric
tables next to its code (``BaseDetector.metric_tables``) and ``tables_for`` / ``all_tables`` compose the
two.

Partitioning is by identity on columns; ``event_date`` is the one derived column: the UTC day of
``ts_event``, which the writer adds (``TableDef.with_partition_columns``), so it is in the stored schema
but never in the rows the engine produces.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import pyarrow as pa
import pyarrow.compute as pc

from core.errors import ConfigError, PipelineError
from core.events import QUOTE_SCHEMA, TRADE_SCHEMA, TRANSFER_SCHEMA, TapeKind
from pipeline.alerts import ALERT_SCHEMA
from pipeline.detectors.registry import ModuleRegistry
from pipeline.parse import PARSED_SCHEMA, TRANSPORT_COLUMNS

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.detectors.base import AnyDetector

DATE_COLUMN: Final = "event_date"
"""The derived partition column: the UTC day (``date32``) of ``ts_event``."""
_US_PER_DAY: Final = 86_400_000_000


def event_date(ts_event: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The UTC day of each ``ts_event`` (µs since the epoch) as ``date32``."""
    days = pc.divide(ts_event, pa.scalar(_US_PER_DAY, pa.int64()))
    # integer division truncates toward zero; ts before 1970 would need floor, which never occurs here
    return pc.cast(pc.cast(days, pa.int32()), pa.date32())


@dataclass(frozen=True)
class TableDef:
    """One table: what it holds, its columns, how it is partitioned and what identifies a row.

    ``key``: the columns that identify a row. ``additive``: rows sharing a key are partial counts
    written by successive micro-batches, to be summed (else a key names one row). ``partition_by``:
    identity partition columns, in order; ``event_date`` is derived from ``ts_event`` by the writer.
    """

    name: str
    schema: pa.Schema
    key: tuple[str, ...]
    description: str
    partition_by: tuple[str, ...] = ()
    additive: bool = False

    def __post_init__(self) -> None:
        names = set(self.schema.names)
        derivable = {DATE_COLUMN} if "ts_event" in names else set()
        unknown = [c for c in self.key if c not in names] + [
            c for c in self.partition_by if c not in names | derivable
        ]
        if unknown:
            raise PipelineError(
                f"table {self.name!r}: key or partition columns {unknown} are not in its schema"
            )

    @property
    def stored_schema(self) -> pa.Schema:
        """The schema as stored: ``schema`` plus the derived partition column, when it has one."""
        return self.with_partition_columns(self.schema.empty_table()).schema

    def with_partition_columns(self, data: pa.Table) -> pa.Table:
        """``data`` (rows of ``schema``) with the derived partition column appended, as it is stored."""
        if DATE_COLUMN not in self.partition_by or DATE_COLUMN in self.schema.names:
            return data
        dates = event_date(data.column("ts_event"))
        return data.append_column(pa.field(DATE_COLUMN, pa.date32(), nullable=False), dates)

    def conform(self, data: pa.Table) -> pa.Table:
        """``data`` as rows of ``schema``: its columns in order and cast, absent ones null, others dropped."""
        present = set(data.column_names)
        columns = [
            data.column(f.name).cast(f.type) if f.name in present else pa.nulls(data.num_rows, f.type)
            for f in self.schema
        ]
        return pa.Table.from_arrays(columns, schema=self.schema)


TRADES: Final = TableDef(
    name="trades",
    schema=pa.schema(list(TRADE_SCHEMA) + [PARSED_SCHEMA.field(n) for n in TRANSPORT_COLUMNS]),
    key=("exchange", "symbol", "trade_id"),
    partition_by=(DATE_COLUMN, "symbol"),
    description="bronze: every valid trade as received (duplicates an exchange resent included)",
)
QUOTES: Final = TableDef(
    name="quotes",
    schema=pa.schema(list(QUOTE_SCHEMA) + [PARSED_SCHEMA.field(n) for n in TRANSPORT_COLUMNS]),
    key=("exchange", "symbol", "update_id"),
    partition_by=(DATE_COLUMN, "symbol"),
    description="bronze: every valid top-of-book quote as received",
)
TRANSFERS: Final = TableDef(
    name="transfers",
    schema=pa.schema(
        [PARSED_SCHEMA.field("exchange"), PARSED_SCHEMA.field("symbol"), *TRANSFER_SCHEMA]
        + [PARSED_SCHEMA.field(n) for n in TRANSPORT_COLUMNS]
    ),
    key=("chain", "tx_hash", "log_index"),
    partition_by=(DATE_COLUMN, "symbol"),
    description="bronze: every valid on-chain transfer as received, with the key it is processed under "
    "(exchange, symbol: its asset's reference instrument, else chain and asset; pipeline.onchain)",
)
QUARANTINE: Final = TableDef(
    name="quarantine",
    schema=pa.schema(
        [PARSED_SCHEMA.field(n) for n in ("reason", "raw", "kind", "exchange", "symbol", "ts_event")]
        + [PARSED_SCHEMA.field(n) for n in ("ts_ingest", "shard_id", "sequence_number", "sub_sequence")]
    ),
    key=("shard_id", "sequence_number", "sub_sequence"),
    description="records a record rule rejected, with the reason code and the raw payload",
)
ALERTS: Final = TableDef(
    name="alerts",
    schema=ALERT_SCHEMA,
    key=("alert_id",),
    partition_by=(DATE_COLUMN,),
    description="every detector's alerts (pipeline.alerts); alert_id is deterministic",
)

BRONZE: Final[Mapping[TapeKind, TableDef]] = {"trade": TRADES, "quote": QUOTES, "transfer": TRANSFERS}
"""The bronze table of each event kind."""
CORE_TABLES: Final = (TRADES, QUOTES, TRANSFERS, QUARANTINE, ALERTS)
"""The tables every pipeline writes, whichever detectors are on."""


def bronze_rows(valid: pa.Table, kind: TapeKind) -> pa.Table:
    """The rows of one kind among valid parsed rows, as rows of its bronze table."""
    return BRONZE[kind].conform(valid.filter(pc.equal(valid.column("kind"), kind)))


def detector_tables(detectors: Iterable[AnyDetector | type[AnyDetector]]) -> tuple[TableDef, ...]:
    """The metric tables the detectors declare, in detector order, each once.

    Two detectors may share a table only by declaring the same definition.
    """
    seen: dict[str, TableDef] = {}
    for det in detectors:
        for table in det.metric_tables:
            known = seen.setdefault(table.name, table)
            if known != table:
                raise PipelineError(
                    f"table {table.name!r} is declared twice with different definitions ({det.module_id}); "
                    "give one of them another name"
                )
    return tuple(seen.values())


def tables_for(detectors: Iterable[AnyDetector | type[AnyDetector]]) -> tuple[TableDef, ...]:
    """Every table a pipeline with these detectors writes: the core tables, then their metric tables."""
    metrics = detector_tables(detectors)
    clash = {t.name for t in metrics} & {t.name for t in CORE_TABLES}
    if clash:
        raise PipelineError(f"metric tables {sorted(clash)} take the name of a core table; rename them")
    return (*CORE_TABLES, *metrics)


def all_tables(config: Config) -> tuple[TableDef, ...]:
    """Every table the pipeline writes with ``config``'s enabled modules."""
    registry = ModuleRegistry()
    return tables_for(registry.get(module_id) for module_id in config.modules)


def registered_metric_tables() -> tuple[TableDef, ...]:
    """The metric tables of every registered module that can be loaded."""
    registry = ModuleRegistry()
    classes = []
    for module_id in registry.ids():
        # a module that cannot be loaded cannot name its tables, and nothing enabled it
        with suppress(PipelineError):
            classes.append(registry.get(module_id))
    return detector_tables(classes)


def tables_named(names: Iterable[str]) -> tuple[TableDef, ...]:
    """The definitions of ``names`` (core tables or any registered module's), in that order."""
    known = {t.name: t for t in (*CORE_TABLES, *registered_metric_tables())}
    wanted = list(names)
    missing = [n for n in wanted if n not in known]
    if missing:
        raise ConfigError(
            f"no table definition for {missing}; known tables: {', '.join(sorted(known))} "
            "(a module that declared them was removed or cannot be loaded)"
        )
    return tuple(known[n] for n in wanted)


def schemas_of(tables: Iterable[TableDef]) -> dict[str, pa.Schema]:
    """Table name -> Arrow schema."""
    return {t.name: t.schema for t in tables}


@dataclass(frozen=True)
class AlertIndex:
    """A global secondary index of the alerts table: one partition attribute, sorted by ``sort``."""

    name: str
    partition: str
    sort: str = "ts_event"


FEED_ATTRIBUTE: Final = "feed"
"""An attribute every DynamoDB alert item carries with the one value ``FEED_VALUE``: the partition of
the index over all alerts by event time (the newest alerts without a symbol or detector)."""
FEED_VALUE: Final = "alerts"


@dataclass(frozen=True)
class DynamoTableDef:
    """The DynamoDB alerts table: one item per ``alert_id``, expiring on ``ttl_attribute`` (epoch s), and
    indexes by event time within a symbol, a detector, and over all alerts (``FEED_ATTRIBUTE``).

    ``name`` comes from the tier config (``dynamodb.alerts_table``); the layout is fixed here.
    """

    name: str
    key: str = "alert_id"
    ttl_attribute: str = "expires_at"
    indexes: tuple[AlertIndex, ...] = (
        AlertIndex("by_symbol_ts", "symbol"),
        AlertIndex("by_detector_ts", "detector"),
        AlertIndex("by_feed_ts", FEED_ATTRIBUTE),
    )

    def index_on(self, partition: str) -> AlertIndex:
        """The index whose partition attribute is ``partition``."""
        for index in self.indexes:
            if index.partition == partition:
                return index
        raise PipelineError(f"the alerts table has no index partitioned by {partition!r}")

    @property
    def key_attributes(self) -> tuple[str, ...]:
        """Every attribute used in the table's or an index's key, each once, in declaration order."""
        names = [self.key] + [a for i in self.indexes for a in (i.partition, i.sort)]
        return tuple(dict.fromkeys(names))

    def attribute_type(self, column: str) -> str:
        """The DynamoDB scalar type of a key attribute: ``N`` for numeric alert columns, else ``S``."""
        if column == FEED_ATTRIBUTE:
            return "S"
        kind = ALERT_SCHEMA.field(column).type
        return "N" if pa.types.is_integer(kind) or pa.types.is_floating(kind) else "S"


def alerts_dynamo_table(config: Config) -> DynamoTableDef:
    """The DynamoDB alerts table of ``config``'s tier."""
    return DynamoTableDef(config.dynamodb.alerts_table)
