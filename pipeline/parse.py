"""Raw wire records -> typed events and quarantine rows (MOD-004's record rules, docs/DETECTORS.md).

``parse_batch`` takes a ``RAW_SCHEMA`` batch (what the sources yield) and returns one ``PARSED_SCHEMA``
batch with exactly one row per input row, in input order: valid events have ``reason`` null, rejected
records carry the reason code and their payload as text in ``raw``. So ``records in = valid +
quarantined`` holds per batch by construction, and arrival order survives.

It runs inside the sources' ``read`` on Spark's executors (option ``parse=true``), one Arrow batch at a
time, so parsing is spread over the executor cores. JSON decoding is per record (``json.loads``:
Arrow's and Polars' JSON readers reject a whole block on one bad record and disagree with the rules on
edge cases such as ``NaN`` or ``1.0`` for an integer); columns are built as Python lists and turned
into Arrow arrays once per batch.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from core.events import SCHEMA_VERSION, SCHEMAS, TAPE_SCHEMAS, TRADE_SIDES
from pipeline.record_schema import EVENT_COLUMNS, FIELD_TYPES, FLOAT_FIELDS

# the parser's input and output, where its callers have always found them
from pipeline.record_schema import PARSED_DDL as PARSED_DDL
from pipeline.record_schema import PARSED_SCHEMA as PARSED_SCHEMA
from pipeline.record_schema import RAW_DDL as RAW_DDL
from pipeline.record_schema import RAW_SCHEMA as RAW_SCHEMA
from pipeline.record_schema import TRANSFER_COLUMNS as TRANSFER_COLUMNS
from pipeline.record_schema import TRANSPORT_COLUMNS as TRANSPORT_COLUMNS

REASONS: Final = (
    "PARSE_ERROR", "SCHEMA_VERSION", "UNKNOWN_TYPE", "MISSING_FIELD", "BAD_TYPE",
    "NON_POSITIVE_PRICE", "NON_POSITIVE_SIZE", "BAD_SIDE", "BAD_CHAIN", "BAD_ADDRESS", "BAD_TX_HASH",
)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FIELDS: Final = {kind: tuple(schema.names) for kind, schema in TAPE_SCHEMAS.items()}
_PRICES: Final = {"trade": ("price",), "quote": ("bid_px", "ask_px")}
_SIZES: Final = {"trade": ("qty",), "quote": ("bid_qty", "ask_qty")}
_NULLABLE: Final = frozenset({"ts_recv"})


def _is_int(value: Any) -> bool:
    return type(value) is int and _INT64_MIN <= value <= _INT64_MAX


def _is_number(value: Any) -> bool:
    return type(value) is float or type(value) is int


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer literal beyond float range is still a number: +-inf
        return math.inf if value > 0 else -math.inf


def check_record(obj: Any) -> tuple[str | None, str | None]:
    """``(kind, reason)`` for one decoded payload: reason is None when the record is valid."""
    if not isinstance(obj, dict):
        return None, "PARSE_ERROR"
    version = obj.get("v")
    if not (_is_int(version) and version == SCHEMA_VERSION):
        return None, "SCHEMA_VERSION"
    kind = obj.get("type")
    if kind not in _FIELDS:
        return None, "UNKNOWN_TYPE"
    if kind == "transfer":
        # imported here: the on-chain config models cost every Spark Python process that parses (the
        # source's planner and runner among them) about half a second on 2 cores, for a kind most
        # streams never carry
        from pipeline.onchain import transfer_reason

        return kind, transfer_reason(obj)
    fields = _FIELDS[kind]
    for name in fields:
        if obj.get(name) is None and name not in _NULLABLE:
            return kind, "MISSING_FIELD"
    for name in fields:
        value = obj.get(name)
        if value is None:
            continue
        expected = FIELD_TYPES[name]
        if expected == pa.string():
            ok = isinstance(value, str)
        elif expected == pa.int64():
            ok = _is_int(value)
        else:
            ok = _is_number(value)
        if not ok:
            return kind, "BAD_TYPE"
    for name in _PRICES[kind]:
        px = _as_float(obj[name])
        if not (math.isfinite(px) and px > 0):
            return kind, "NON_POSITIVE_PRICE"
    for name in _SIZES[kind]:
        size = _as_float(obj[name])
        if not math.isfinite(size) or size < 0 or (kind == "trade" and size == 0):
            return kind, "NON_POSITIVE_SIZE"
    if kind == "trade" and obj["side"] not in TRADE_SIDES:
        return kind, "BAD_SIDE"
    return kind, None


FAST_CHUNK: Final = 4_096
_FAST_SCHEMA: Final = pa.schema(
    [pa.field("v", pa.int64()), pa.field("type", pa.string())]
    + [pa.field(n, FIELD_TYPES[n]) for n in EVENT_COLUMNS]
    + [pa.field("ts_sent", pa.int64())]
)
_JSON_OPTIONS: Final = pa_json.ParseOptions(explicit_schema=_FAST_SCHEMA, unexpected_field_behavior="ignore")
_KIND_FIELDS: Final = {  # the vectorised path's kinds: a chunk holding a transfer takes the per-record one
    kind: tuple(n for n in names if n not in _NULLABLE) for kind, names in _FIELDS.items() if kind in SCHEMAS
}
_IDENTITY: Final = ("exchange", "symbol", "ts_event")


def parse_batch(raw: pa.RecordBatch | pa.Table) -> pa.RecordBatch:
    """Parse one ``RAW_SCHEMA`` batch into one ``PARSED_SCHEMA`` batch with the same rows in order.

    Chunks of records are decoded by Arrow's JSON reader with the strict schema and checked with
    vectorised rules; Arrow refuses every record the rules would call ``PARSE_ERROR`` or ``BAD_TYPE``
    (and some they accept, such as duplicate keys), and a chunk it refuses, or one holding a transfer
    (rare beside market events; their rules live in ``pipeline.onchain``), goes through the
    per-record reference path, ``check_record``. Both paths give the same rows (a property test
    checks it). The fast path never turns a record into a Python object: the chunk's newline-joined
    text is cut from the Arrow column's buffers with NumPy.
    """
    data = raw.column("data")
    datas = data.combine_chunks() if isinstance(data, pa.ChunkedArray) else data
    parts: list[pa.RecordBatch] = []
    for lo in range(0, max(len(datas), 1), FAST_CHUNK):
        chunk = datas.slice(lo, FAST_CHUNK)
        decoded = _decode_fast(chunk)
        parts.append(_from_decoded(decoded, chunk) if decoded is not None else _parse_slow(chunk.to_pylist()))
    table = pa.Table.from_batches(parts, schema=_EVENTS_PART)
    for name in ("ts_ingest", "shard_id", "sequence_number", "sub_sequence"):
        table = table.append_column(PARSED_SCHEMA.field(name), raw.column(name))
    batches = table.select(PARSED_SCHEMA.names).combine_chunks().to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=PARSED_SCHEMA)


_EVENTS_PART: Final = pa.schema(
    [PARSED_SCHEMA.field(n) for n in ("kind", *EVENT_COLUMNS, "ts_sent", "reason", "raw")]
)
_REASON_NAMES: Final = pa.array([None, *REASONS], type=pa.string())
"""Reason codes of the vectorised rules (0 valid, else 1 + index in ``REASONS``) to their names."""
_NEWLINES: Final = (ord("\n"), ord("\r"))


def _ndjson(datas: pa.BinaryArray) -> bytes | None:
    """The records of a chunk as newline-delimited text, or None when a record is null or holds a line
    break (one record would read as several lines)."""
    if not pa.types.is_binary(datas.type):  # the offsets read below are 32-bit ones (RAW_SCHEMA's)
        return None
    values = datas.buffers()[2]
    if datas.null_count or values is None:  # no value buffer: every record is empty
        return None
    offsets = np.frombuffer(datas.buffers()[1], dtype=np.int32)[datas.offset : datas.offset + len(datas) + 1]
    body = np.frombuffer(values, dtype=np.uint8)[offsets[0] : offsets[-1]]
    if np.isin(body, _NEWLINES).any():
        return None
    blob: bytes = np.insert(body, offsets[1:-1] - offsets[0], _NEWLINES[0]).tobytes()
    return blob


def _decode_fast(datas: pa.BinaryArray) -> pa.Table | None:
    """Arrow's strict decoding of a chunk, or None when any record needs the per-record path."""
    blob = _ndjson(datas) if len(datas) else None
    if blob is None:
        return None
    try:
        blob.decode("utf-8")
        table = pa_json.read_json(
            io.BytesIO(blob),
            read_options=pa_json.ReadOptions(block_size=len(blob) + 1, use_threads=False),
            parse_options=_JSON_OPTIONS,
        )
    except (UnicodeDecodeError, pa.ArrowException):
        return None
    if table.num_rows != len(datas) or pc.any(pc.equal(table.column("type"), "transfer")).as_py():
        return None
    return table


def _from_decoded(table: pa.Table, datas: pa.BinaryArray) -> pa.RecordBatch:
    """The record rules, vectorised over a chunk Arrow decoded (so no PARSE_ERROR or BAD_TYPE; every
    payload is UTF-8 text)."""
    n = table.num_rows
    col = {name: table.column(name).combine_chunks() for name in _FAST_SCHEMA.names}
    code = np.zeros(n, dtype=np.int8)  # 0 valid, else 1 + index in REASONS

    def fail(mask: np.ndarray, reason: str) -> None:
        code[(code == 0) & mask] = REASONS.index(reason) + 1

    def arr(name: str) -> np.ndarray:  # nulls become NaN, which every check below rejects
        return np.asarray(col[name].to_numpy(zero_copy_only=False), dtype=np.float64)

    fail(~np.asarray(pc.fill_null(pc.equal(col["v"], SCHEMA_VERSION), False)), "SCHEMA_VERSION")
    kind_type = col["type"]
    is_trade = np.asarray(pc.fill_null(pc.equal(kind_type, "trade"), False))
    is_quote = np.asarray(pc.fill_null(pc.equal(kind_type, "quote"), False))
    fail(~(is_trade | is_quote), "UNKNOWN_TYPE")
    for is_kind, fields in ((is_trade, _KIND_FIELDS["trade"]), (is_quote, _KIND_FIELDS["quote"])):
        missing = np.zeros(n, dtype=bool)
        for name in fields:
            missing |= np.asarray(col[name].is_null())
        fail(is_kind & missing, "MISSING_FIELD")
    with np.errstate(invalid="ignore"):
        price, qty = arr("price"), arr("qty")
        bid, ask, bid_q, ask_q = arr("bid_px"), arr("ask_px"), arr("bid_qty"), arr("ask_qty")
        fail(is_trade & ~(np.isfinite(price) & (price > 0)), "NON_POSITIVE_PRICE")
        fail(is_quote & ~(np.isfinite(bid) & (bid > 0) & np.isfinite(ask) & (ask > 0)), "NON_POSITIVE_PRICE")
        fail(is_trade & ~(np.isfinite(qty) & (qty > 0)), "NON_POSITIVE_SIZE")
        fail(is_quote & ~(np.isfinite(bid_q) & (bid_q >= 0) & np.isfinite(ask_q) & (ask_q >= 0)),
             "NON_POSITIVE_SIZE")
    side_ok = np.asarray(pc.fill_null(pc.is_in(col["side"], pa.array(TRADE_SIDES)), False))
    fail(is_trade & ~side_ok, "BAD_SIDE")

    valid = code == 0
    bad = ~valid
    typed_kind = valid | (code >= REASONS.index("MISSING_FIELD") + 1)  # the kind was readable
    out: dict[str, pa.Array] = {
        "kind": pc.if_else(pa.array(typed_kind), kind_type, pa.scalar(None, pa.string())),
    }
    for name in EVENT_COLUMNS:
        kind_has = is_trade if name in SCHEMAS["trade"].names else np.zeros(n, dtype=bool)
        if name in SCHEMAS["quote"].names:
            kind_has = kind_has | is_quote
        keep = (valid & kind_has) | (bad & (name in _IDENTITY))
        out[name] = pc.if_else(pa.array(keep), col[name], pa.scalar(None, col[name].type))
    out["ts_sent"] = pc.if_else(pa.array(valid), col["ts_sent"], pa.scalar(None, pa.int64()))
    out["reason"] = _REASON_NAMES.take(pa.array(code))
    text = pa.concat_arrays([datas.cast(pa.string())])  # at offset 0: if_else misreads a sliced string array
    out["raw"] = pc.if_else(pa.array(valid), pa.scalar(None, pa.string()), text)
    return pa.RecordBatch.from_arrays([out[f.name] for f in _EVENTS_PART], schema=_EVENTS_PART)


def _text(data: bytes | None) -> str:
    return data.decode("utf-8", errors="replace") if data is not None else ""


def _parse_slow(datas: list[bytes | None]) -> pa.RecordBatch:
    """The per-record reference path (``json.loads`` and ``check_record``)."""
    cols: dict[str, list[Any]] = {name: [] for name in _EVENTS_PART.names}
    event_cols = [(n, cols[n]) for n in EVENT_COLUMNS]
    kinds, reasons, raws, sents = cols["kind"], cols["reason"], cols["raw"], cols["ts_sent"]
    for data in datas:
        try:
            obj = json.loads(data) if data is not None else None
        except (ValueError, UnicodeDecodeError, RecursionError):
            obj = None
        kind, reason = check_record(obj) if obj is not None else (None, "PARSE_ERROR")
        kinds.append(kind)
        reasons.append(reason)
        if reason is None:
            assert isinstance(obj, dict) and kind is not None
            raws.append(None)
            own = TAPE_SCHEMAS[kind].names  # type: ignore[index]
            for name, values in event_cols:
                value = obj.get(name) if name in own else None
                values.append(float(value) if value is not None and name in FLOAT_FIELDS else value)
            sent = obj.get("ts_sent")
            sents.append(sent if _is_int(sent) else None)
            continue
        raws.append(_text(data))
        sents.append(None)
        # keep what identifies the instrument, when readable, for the quarantine metrics
        readable = obj if isinstance(obj, dict) else {}
        for name, values in event_cols:
            value = readable.get(name)
            if name in ("exchange", "symbol"):
                values.append(value if isinstance(value, str) else None)
            elif name == "ts_event":
                values.append(value if _is_int(value) else None)
            else:
                values.append(None)
    arrays = [pa.array(cols[f.name], type=f.type) for f in _EVENTS_PART]
    return pa.RecordBatch.from_arrays(arrays, schema=_EVENTS_PART)
