"""The reference's input: every received record of a run, in arrival order, as one Polars frame.

Two sources produce it. A tape replayed without transport faults arrives in tape order
``(ts_event, seq)`` (docs/DETECTORS.md, Arrival order), so its rows are read directly. A faulted replay
(duplicates, reordering, late or corrupt records) is given as the wire payloads in the order the pipeline
received them; those are parsed here, by the reference's own reading of the record rules, not by the
pipeline's parser.

Columns of the frame (``ARRIVAL_COLUMNS``): ``arrival`` (0, 1, ... in arrival order), ``kind``, the union
of the event and transfer schemas (null where a kind has no such field), ``ts_sent`` and ``reason``
(the quarantine reason code, null for a valid record). ``raw`` holds the payload text of quarantined
wire records.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

import polars as pl
import pyarrow as pa

from core.events import CHAINS, SCHEMA_VERSION, TAPE_KINDS, TAPE_SCHEMAS, TRADE_SIDES, TapeKind
from core.tape import Tape

_STRING_FIELDS: Final = ("exchange", "symbol", "side", "chain", "tx_hash", "asset", "from_addr", "to_addr")
_INT_FIELDS: Final = ("trade_id", "update_id", "ts_event", "ts_recv", "log_index", "block")
_FLOAT_FIELDS: Final = ("price", "qty", "bid_px", "bid_qty", "ask_px", "ask_qty", "amount")
_ETH_ADDRESS: Final = r"^0x[0-9a-f]{40}$"
_ETH_HASH: Final = r"^0x[0-9a-f]{64}$"
_BASE58: Final = "[1-9A-HJ-NP-Za-km-z]"

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_FLOAT_MAX: Final = 1.7e308

ARRIVAL_SCHEMA: Final[dict[str, Any]] = {
    "arrival": pl.Int64,
    "kind": pl.Utf8,
    "exchange": pl.Utf8,
    "symbol": pl.Utf8,
    "trade_id": pl.Int64,
    "price": pl.Float64,
    "qty": pl.Float64,
    "side": pl.Utf8,
    "bid_px": pl.Float64,
    "bid_qty": pl.Float64,
    "ask_px": pl.Float64,
    "ask_qty": pl.Float64,
    "update_id": pl.Int64,
    "ts_event": pl.Int64,
    "ts_recv": pl.Int64,
    "ts_sent": pl.Int64,
    "reason": pl.Utf8,
    "raw": pl.Utf8,
    "chain": pl.Utf8,
    "tx_hash": pl.Utf8,
    "log_index": pl.Int64,
    "block": pl.Int64,
    "asset": pl.Utf8,
    "amount": pl.Float64,
    "from_addr": pl.Utf8,
    "to_addr": pl.Utf8,
}
ARRIVAL_COLUMNS: Final = tuple(ARRIVAL_SCHEMA)
_ARRIVAL_READS: Final = frozenset({*ARRIVAL_COLUMNS, "corrupt"})
"""What ``from_arrival`` reads of the replay's rows (not their tape, seq or schedule)."""


def from_tape(tape: Tape) -> pl.DataFrame:
    """A tape as it arrives when replayed without faults: every kind merged by ``(ts_event, seq)``.

    One lazy plan: each kind's files scanned with only the columns the reference reads, its value rules
    applied to that kind alone (no branching on ``kind`` row by row), the kinds merged into tape order.
    A trade's or quote's ``ts_recv`` stays null: no market module reads it (a transfer's goes into
    MOD-010's evidence), and on a day of quotes and trades it is a tenth of what is read and sorted.
    """
    parts = []
    for kind in TAPE_KINDS:
        files = tape.files(kind)
        if not files:
            continue
        names = [n for n in TAPE_SCHEMAS[kind].names if kind == "transfer" or n != "ts_recv"]
        part = (
            pl.scan_parquet([str(f) for f in files])
            .select([*names, "seq"])
            .with_columns(pl.lit(kind).alias("kind"), _value_reason(kind).alias("reason"))
        )
        parts.append(part)
    if not parts:
        return pl.DataFrame(schema=ARRIVAL_SCHEMA)
    merged = _tape_order(pl.concat(parts, how="diagonal_relaxed").collect())
    return _conform(
        merged.with_columns(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("arrival"),
            pl.lit(None, dtype=pl.Int64).alias("ts_sent"),
            pl.lit(None, dtype=pl.Utf8).alias("raw"),
        )
    )


def _tape_order(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` sorted by ``(ts_event, seq)``.

    ``seq`` is unique over a tape, and on a tape written in time order it alone gives that order; one
    integer sort key is much cheaper than two, so it is tried first and kept only when the times then
    never go backwards.
    """
    by_seq = frame.sort("seq")
    if by_seq.get_column("ts_event").is_sorted():
        return by_seq
    return frame.sort(["ts_event", "seq"])


def from_arrival(table: pa.Table, first: int = 0) -> pl.DataFrame:
    """Rows as the replay hands them to a target (``replay.faults.ARRIVAL_SCHEMA``, arrival order).

    ``kind`` is the replay's code (the index in ``TAPE_KINDS``); a row flagged ``corrupt`` reaches the
    pipeline as unparseable bytes, so it is a ``PARSE_ERROR`` whose exchange and symbol are unknown.
    ``first``: the ``arrival`` of the first row, when ``table`` continues an earlier part of the arrival
    (every rule here looks at one row alone, so the parts stacked equal the whole converted at once).
    """
    if table.num_rows == 0:
        return pl.DataFrame(schema=ARRIVAL_SCHEMA)
    frame = pl.DataFrame(table.select([c for c in table.column_names if c in _ARRIVAL_READS]))
    corrupt = pl.col("corrupt") if "corrupt" in frame.columns else pl.lit(False)
    kinds = dict(enumerate(TAPE_KINDS))
    frame = frame.with_columns(
        pl.int_range(first, first + pl.len(), dtype=pl.Int64).alias("arrival"),
        pl.col("kind").cast(pl.Int64).replace_strict(kinds, return_dtype=pl.Utf8).alias("kind"),
        pl.when(corrupt).then(pl.lit("PARSE_ERROR")).otherwise(None).alias("reason"),
        pl.lit(None, dtype=pl.Utf8).alias("raw"),
    )
    unknown = [
        pl.when(corrupt).then(pl.lit("")).otherwise(pl.col(c)).alias(c) for c in ("exchange", "symbol")
    ]
    return apply_value_rules(_conform(frame.with_columns(unknown)))


def from_wire(payloads: Iterable[bytes | str]) -> pl.DataFrame:
    """Wire records in arrival order, parsed and checked against the record rules."""
    rows = [_parse_record(i, p) for i, p in enumerate(payloads)]
    frame = (
        pl.DataFrame(rows, schema=ARRIVAL_SCHEMA, orient="row")
        if rows
        else pl.DataFrame(schema=ARRIVAL_SCHEMA)
    )
    return apply_value_rules(frame)


def apply_value_rules(frame: pl.DataFrame) -> pl.DataFrame:
    """The record rules that look at values (price, size, side, and a transfer's fields), for rows not
    already quarantined; each row by the rules of its kind (``_value_reason``)."""
    reason = (
        pl.when(pl.col("reason").is_not_null())
        .then(pl.col("reason"))
        .when(pl.col("kind") == "transfer")
        .then(_value_reason("transfer"))
        .when(pl.col("kind") == "trade")
        .then(_value_reason("trade"))
        .otherwise(_value_reason("quote"))
    )
    return frame.with_columns(reason.alias("reason"))


def _value_reason(kind: TapeKind) -> pl.Expr:
    """The quarantine reason the value rules give a valid-shaped record of ``kind``, null when it passes.

    The first failing rule wins, in the documented order: price, then size, then side (a transfer: its
    integers, chain, amount, addresses, then hash).
    """

    def bad(*cols: str, strict: bool) -> pl.Expr:
        tests = [(pl.col(c) <= 0) if strict else (pl.col(c) < 0) for c in cols] + [
            ~pl.col(c).is_finite() for c in cols
        ]
        return pl.any_horizontal(tests)

    none = pl.lit(None, dtype=pl.Utf8)
    if kind == "trade":
        return (
            pl.when(bad("price", strict=True))
            .then(pl.lit("NON_POSITIVE_PRICE"))
            .when(bad("qty", strict=True))
            .then(pl.lit("NON_POSITIVE_SIZE"))
            .when(~pl.col("side").is_in(list(TRADE_SIDES)))
            .then(pl.lit("BAD_SIDE"))
            .otherwise(none)
        )
    if kind == "quote":
        return (
            pl.when(bad("bid_px", "ask_px", strict=True))
            .then(pl.lit("NON_POSITIVE_PRICE"))
            .when(bad("bid_qty", "ask_qty", strict=False))
            .then(pl.lit("NON_POSITIVE_SIZE"))
            .otherwise(none)
        )
    eth = pl.col("chain") == "ethereum"

    def malformed(col: str, eth_pattern: str, sol_pattern: str) -> pl.Expr:
        return ~pl.when(eth).then(pl.col(col).str.contains(eth_pattern)).otherwise(
            pl.col(col).str.contains(sol_pattern)
        )

    address_bad = malformed("from_addr", _ETH_ADDRESS, f"^{_BASE58}{{32,44}}$") | malformed(
        "to_addr", _ETH_ADDRESS, f"^{_BASE58}{{32,44}}$"
    )
    return (
        pl.when((pl.col("log_index") < 0) | (pl.col("block") < 0))
        .then(pl.lit("BAD_TYPE"))
        .when(~pl.col("chain").is_in(list(CHAINS)))
        .then(pl.lit("BAD_CHAIN"))
        .when(bad("amount", strict=True))
        .then(pl.lit("NON_POSITIVE_SIZE"))
        .when(address_bad)
        .then(pl.lit("BAD_ADDRESS"))
        .when(malformed("tx_hash", _ETH_HASH, f"^{_BASE58}{{64,88}}$"))
        .then(pl.lit("BAD_TX_HASH"))
        .otherwise(none)
    )


def _conform(frame: pl.DataFrame) -> pl.DataFrame:
    missing = [pl.lit(None, dtype=t).alias(c) for c, t in ARRIVAL_SCHEMA.items() if c not in frame.columns]
    return frame.with_columns(missing).select([pl.col(c).cast(t) for c, t in ARRIVAL_SCHEMA.items()])


def _parse_record(arrival: int, payload: bytes | str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(ARRIVAL_COLUMNS)
    row["arrival"] = arrival
    try:
        text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
        obj = json.loads(text)
    except ValueError:  # UnicodeDecodeError is a ValueError too
        obj = None
    if not isinstance(obj, dict):
        raw = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else payload
        return {**row, "exchange": "", "symbol": "", "reason": "PARSE_ERROR", "raw": raw}
    # What we can learn about where a bad record came from; names stay empty when unknown.
    for name in ("exchange", "symbol"):
        row[name] = obj[name] if isinstance(obj.get(name), str) else ""
    row["ts_event"] = obj["ts_event"] if _is_int(obj.get("ts_event")) else None
    reason = _structural_reason(obj)
    if reason is not None:
        return {
            **row,
            "kind": obj.get("type") if isinstance(obj.get("type"), str) else None,
            "reason": reason,
            "raw": text,
        }
    kind = obj["type"]
    row["kind"] = kind
    for name in TAPE_SCHEMAS[kind].names:
        row[name] = obj[name]
    sent = obj.get("ts_sent")
    row["ts_sent"] = sent if _is_int(sent) else None
    return row


def _structural_reason(obj: dict[str, Any]) -> str | None:
    version = obj.get("v")
    if not _is_int(version) or version != SCHEMA_VERSION:
        return "SCHEMA_VERSION"
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in TAPE_SCHEMAS:
        return "UNKNOWN_TYPE"
    names = TAPE_SCHEMAS[kind].names
    for name in names:
        if name not in obj or (obj[name] is None and name != "ts_recv"):
            return "MISSING_FIELD"
    for name in names:
        value = obj[name]
        if value is None:
            continue
        if name in _STRING_FIELDS and not isinstance(value, str):
            return "BAD_TYPE"
        if name in _INT_FIELDS and not _is_int(value):
            return "BAD_TYPE"
        if name in _FLOAT_FIELDS and not _is_number(value):
            return "BAD_TYPE"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and _INT64_MIN <= value <= _INT64_MAX


def _is_number(value: Any) -> bool:
    # NaN and infinities are numbers here; the value rules quarantine them as non-positive.
    if isinstance(value, bool):
        return False
    return isinstance(value, float) or (isinstance(value, int) and -_FLOAT_MAX < value < _FLOAT_MAX)
