"""The schemas of the records the sources yield: raw wire records (``RAW_SCHEMA``) and parsed events
(``PARSED_SCHEMA``), as Arrow schemas and as Spark DDL.

Apart from ``pipeline.parse`` (which re-exports them) because a source's ``schema()`` needs only the
DDL: Spark answers it in a Python process of its own (the data source planner), which would otherwise
import the parser and what it imports (NumPy, pandas through pyarrow) for two strings.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

RAW_SCHEMA: Final = pa.schema(
    [
        pa.field("shard_id", pa.string()),
        pa.field("sequence_number", pa.string()),
        pa.field("sub_sequence", pa.int32()),
        pa.field("partition_key", pa.string()),
        pa.field("data", pa.binary()),
        pa.field("ts_ingest", pa.int64()),
    ]
)
"""One user record as a source yields it: where it came from (shard, sequence number, index inside a KPL
aggregate), its partition key, payload and Kinesis arrival time (µs; null from a tape)."""

_INT_FIELDS: Final = ("trade_id", "update_id", "ts_event", "ts_recv", "log_index", "block")
FLOAT_FIELDS: Final = ("price", "qty", "bid_px", "bid_qty", "ask_px", "ask_qty", "amount")
TRANSFER_COLUMNS: Final = (
    "chain", "tx_hash", "log_index", "block", "asset", "amount", "from_addr", "to_addr",
)
"""The transfer fields beside ``ts_event`` and ``ts_recv`` (``core.events.TRANSFER_SCHEMA``)."""
EVENT_COLUMNS: Final = (
    "exchange", "symbol", "trade_id", "price", "qty", "side",
    "bid_px", "bid_qty", "ask_px", "ask_qty", "update_id", "ts_event", "ts_recv", *TRANSFER_COLUMNS,
)
FIELD_TYPES: Final = {
    **{n: pa.int64() for n in _INT_FIELDS},
    **{n: pa.float64() for n in FLOAT_FIELDS},
    "exchange": pa.string(), "symbol": pa.string(), "side": pa.string(),
    **{n: pa.string() for n in ("chain", "tx_hash", "asset", "from_addr", "to_addr")},
}

PARSED_SCHEMA: Final = pa.schema(
    [pa.field("kind", pa.string())]
    + [pa.field(n, FIELD_TYPES[n]) for n in EVENT_COLUMNS]
    + [
        pa.field("ts_sent", pa.int64()),
        pa.field("ts_ingest", pa.int64()),
        pa.field("shard_id", pa.string()),
        pa.field("sequence_number", pa.string()),
        pa.field("sub_sequence", pa.int32()),
        pa.field("reason", pa.string()),
        pa.field("raw", pa.string()),
    ]
)
"""Valid trades, quotes and transfers (the union of the schemas' fields, ``kind`` says which; a valid
transfer's ``exchange`` and ``symbol`` are null until ``pipeline.onchain.route_transfers`` keys it) and
quarantined records (``reason`` set, ``raw`` the payload; ``kind``, ``exchange``, ``symbol``,
``ts_event`` kept when they could be read, so quarantine metrics can name the instrument)."""

_DDL_TYPES: Final = {
    pa.int64(): "bigint", pa.int32(): "int", pa.float64(): "double", pa.string(): "string",
    pa.binary(): "binary",
}
RAW_DDL: Final = ", ".join(f"{f.name} {_DDL_TYPES[f.type]}" for f in RAW_SCHEMA)
"""``RAW_SCHEMA`` as a Spark DDL string (what the sources yield without ``parse=true``)."""
TRANSPORT_COLUMNS: Final = ("ts_sent", "ts_ingest", "shard_id", "sequence_number", "sub_sequence")
"""Where and when each record travelled: the replay's send stamp, the Kinesis arrival time and position
(``pipeline.engine.arrival_order`` rebuilds arrival order from the position)."""

PARSED_DDL: Final = ", ".join(f"{f.name} {_DDL_TYPES[f.type]}" for f in PARSED_SCHEMA)
"""``PARSED_SCHEMA`` as a Spark DDL string (what the sources yield with option ``parse=true``)."""
