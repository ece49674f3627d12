"""The event schema and the wire format, defined once for connectors, readers, replay and the pipeline.

All times are int64 microseconds since the Unix epoch, UTC. ``ts_event`` is the exchange's time,
``ts_recv`` when a recorder received the message (null when the source has none), ``ts_sent`` when the
replay (or a connector) handed the record to Kinesis.
"""

from __future__ import annotations

import json
from typing import Any, Final, Literal

import pyarrow as pa

from core.errors import SchemaError

SCHEMA_VERSION: Final = 1
"""Version written into every wire record as ``v``; records with another version are quarantined."""

EventKind = Literal["trade", "quote"]
EVENT_KINDS: Final[tuple[EventKind, ...]] = ("trade", "quote")

TRADE_SCHEMA: Final = pa.schema(
    [
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("trade_id", pa.int64(), nullable=False),
        pa.field("price", pa.float64(), nullable=False),
        pa.field("qty", pa.float64(), nullable=False),
        pa.field("side", pa.string(), nullable=False),
        pa.field("ts_event", pa.int64(), nullable=False),
        pa.field("ts_recv", pa.int64(), nullable=True),
    ]
)

QUOTE_SCHEMA: Final = pa.schema(
    [
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("bid_px", pa.float64(), nullable=False),
        pa.field("bid_qty", pa.float64(), nullable=False),
        pa.field("ask_px", pa.float64(), nullable=False),
        pa.field("ask_qty", pa.float64(), nullable=False),
        pa.field("update_id", pa.int64(), nullable=False),
        pa.field("ts_event", pa.int64(), nullable=False),
        pa.field("ts_recv", pa.int64(), nullable=True),
    ]
)

SCHEMAS: Final[dict[EventKind, pa.Schema]] = {"trade": TRADE_SCHEMA, "quote": QUOTE_SCHEMA}
TRADE_SIDES: Final = ("buy", "sell")

TRANSFER_SCHEMA: Final = pa.schema(
    [
        pa.field("chain", pa.string(), nullable=False),
        pa.field("tx_hash", pa.string(), nullable=False),
        pa.field("log_index", pa.int64(), nullable=False),
        pa.field("block", pa.int64(), nullable=False),
        pa.field("ts_event", pa.int64(), nullable=False),
        pa.field("ts_recv", pa.int64(), nullable=True),
        pa.field("asset", pa.string(), nullable=False),
        pa.field("amount", pa.float64(), nullable=False),
        pa.field("from_addr", pa.string(), nullable=False),
        pa.field("to_addr", pa.string(), nullable=False),
    ]
)
"""An on-chain token transfer (version 1): ``ts_event`` is the block time, ``ts_recv`` when our indexer
saw it, ``amount`` in token units (the exact integer value over ``10**decimals``, rounded to float once),
``asset`` after the wrapped-token mapping (WBTC is ``BTC``). Identity: ``(chain, tx_hash, log_index)``;
sources without a log index number the transfers of one transaction in file order (0, 1, ...)."""

TapeKind = Literal["trade", "quote", "transfer"]
"""What a tape holds rows of: the market events and on-chain transfers."""
TAPE_KINDS: Final[tuple[TapeKind, ...]] = ("trade", "quote", "transfer")
TAPE_SCHEMAS: Final[dict[TapeKind, pa.Schema]] = {
    "trade": TRADE_SCHEMA, "quote": QUOTE_SCHEMA, "transfer": TRANSFER_SCHEMA,
}
CHAINS: Final = ("ethereum", "solana")

_ID_FIELD: Final[dict[EventKind, str]] = {"trade": "trade_id", "quote": "update_id"}


def event_id(kind: EventKind, exchange: str, symbol: str, native_id: int) -> str:
    """The id by which labels, alerts and quarantine rows name one event.

    ``trade:binance:BTCUSDT:123`` for a trade, ``quote:binance:BTCUSDT:456`` for a quote (its update id).
    """
    return f"{kind}:{exchange}:{symbol}:{native_id}"


def transfer_id(chain: str, tx_hash: str, log_index: int) -> str:
    """The id by which labels and alerts name one transfer: ``transfer:ethereum:0xabc...:7``."""
    return f"transfer:{chain}:{tx_hash}:{log_index}"


def partition_key(exchange: str, symbol: str) -> str:
    """The Kinesis partition key: all events of one instrument on one exchange stay in order. A transfer
    travels under the key of the market it is processed under (``replay.wire.partition_keys``), so it
    stays in order among that market's events."""
    return f"{exchange}:{symbol}"


def transfer_partition_key(chain: str, asset: str) -> str:
    """A transfer's own key, ``chain:asset``: its source, within which transfers stay in order (a tape's
    records; on Kinesis it travels under its market's key, ``replay.wire.partition_keys``)."""
    return partition_key(chain, asset)


def to_wire(kind: TapeKind, row: dict[str, Any], ts_sent: int | None = None) -> bytes:
    """Encode one event or transfer (a dict with the schema's fields) as a wire record (compact JSON,
    UTF-8)."""
    if kind not in TAPE_SCHEMAS:
        raise SchemaError(f"unknown event kind {kind!r}; expected one of {TAPE_KINDS}")
    payload: dict[str, Any] = {"v": SCHEMA_VERSION, "type": kind}
    for name in TAPE_SCHEMAS[kind].names:
        payload[name] = row.get(name)
    if ts_sent is not None:
        payload["ts_sent"] = ts_sent
    return json.dumps(payload, separators=(",", ":")).encode()


def native_id_field(kind: EventKind) -> str:
    """The schema field that identifies an event of this kind within its exchange and symbol."""
    return _ID_FIELD[kind]
