"""Vectorised wire encoding of arrival-ordered rows: the batch form of ``core.events.to_wire``.

``to_wire`` is the definition; this module produces the same JSON objects (same keys in the same
order, same values) for a whole Arrow table at once through Polars' JSON encoder, because a Python
call per event would cap the replay far below the target rates. ``tests/replay/test_wire.py`` checks
it against ``to_wire`` event by event. Number formatting may differ (``1e-05`` vs ``0.00001``), which
JSON readers do not see.
"""

from __future__ import annotations

import functools
from typing import Final

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from core.events import SCHEMA_VERSION, TAPE_KINDS, TAPE_SCHEMAS, partition_key
from pipeline.config import ConfigLoader
from pipeline.instruments import InstrumentsConfig
from pipeline.onchain import TokensConfig, transfer_key
from replay.merge import KIND_CODE

CORRUPT_TAIL: Final = b"\xff\xfe<corrupt>"


def corrupt_payload(payload: bytes) -> bytes:
    """Unparseable bytes made from a payload: its first half and bytes that are not UTF-8."""
    return payload[: len(payload) // 2] + CORRUPT_TAIL


def event_keys(table: pa.Table) -> pa.Array:
    """``exchange:symbol`` per row, as ``core.events.partition_key`` builds it; ``chain:asset`` for a
    transfer (``core.events.transfer_partition_key``): the key within which a source's events stay in
    order."""
    transfer = pc.equal(table.column("kind"), KIND_CODE["transfer"])
    exchange = pc.if_else(transfer, table.column("chain"), table.column("exchange")).cast(pa.string())
    symbol = pc.if_else(transfer, table.column("asset"), table.column("symbol")).cast(pa.string())
    return pc.binary_join_element_wise(exchange, symbol, ":")


def partition_keys(table: pa.Table) -> pa.Array:
    """The Kinesis partition key per row: its ``event_keys``, except that a transfer takes the key of the
    market it is processed under (``pipeline.onchain.transfer_key``: its asset's reference instrument,
    or a stablecoin's configured market's), per the registry in ``config/``.

    A transfer then shares that market's shard and reaches the pipeline in the order it was sent among
    the market's events. It must: MOD-011 decides an on-chain observation on the market's clock at its
    arrival, which on another shard would depend on how the shards' records interleave in a batch."""
    keys = event_keys(table)
    transfer = pc.equal(table.column("kind"), KIND_CODE["transfer"])
    if not pc.any(transfer).as_py():
        return keys
    sources = pc.unique(pc.filter(keys, transfer))
    routed = pa.array([_market_key(key) for key in sources.to_pylist()], pa.string())
    return pc.if_else(transfer, pc.take(routed, pc.index_in(keys, value_set=sources)), keys)


def _market_key(key: str) -> str:
    chain, asset = key.split(":", 1)
    tokens, instruments = _registry()
    return partition_key(*transfer_key(chain, asset, tokens, instruments))


@functools.cache
def _registry() -> tuple[TokensConfig, InstrumentsConfig]:
    """The token table and instrument registry of ``config/`` (what a deployment's producers key by)."""
    config = ConfigLoader().load("small", env={})
    return config.tokens, config.instruments


def encode_array(table: pa.Table, ts_sent: int | None) -> pa.Array:
    """The wire record of every row of an arrival table (kinds interleaved), in row order, as one Arrow
    ``large_binary`` array: UTF-8 JSON, or the corrupt bytes where the row's ``corrupt`` flag is set."""
    n = table.num_rows
    kinds = table.column("kind").to_numpy()
    parts: list[pa.Array] = []
    positions: list[np.ndarray] = []
    for kind in TAPE_KINDS:
        rows = np.flatnonzero(kinds == KIND_CODE[kind])
        if rows.size == 0:
            continue
        part = table.select(TAPE_SCHEMAS[kind].names)
        if rows.size != n:
            part = part.take(pa.array(rows))
        frame = pl.from_arrow(part)
        assert isinstance(frame, pl.DataFrame)
        fields = [pl.lit(SCHEMA_VERSION).alias("v"), pl.lit(kind).alias("type"), *frame.columns]
        if ts_sent is not None:
            fields.append(pl.lit(ts_sent, dtype=pl.Int64).alias("ts_sent"))
        encoded = frame.select(pl.struct(fields).struct.json_encode()).to_series().to_arrow()
        parts.append(encoded.cast(pa.large_string()).cast(pa.large_binary()))
        positions.append(rows)
    if not parts:
        return pa.array([], type=pa.large_binary())
    if len(parts) == 1:
        data = parts[0]
    else:
        inverse = np.empty(n, dtype=np.int64)
        inverse[np.concatenate(positions)] = np.arange(n)
        data = pa.concat_arrays(parts).take(pa.array(inverse))
    bad = corrupt_rows(table)
    if bad.size:
        mask = np.zeros(n, dtype=bool)
        mask[bad] = True
        broken = [corrupt_payload(data[int(i)].as_py()) for i in bad]
        data = pc.replace_with_mask(data, pa.array(mask), pa.array(broken, type=pa.large_binary()))
    return data


def encode(table: pa.Table, ts_sent: int | None) -> list[bytes]:
    """``encode_array`` as Python bytes, for targets that hand over one record at a time."""
    records: list[bytes] = encode_array(table, ts_sent).to_pylist()
    return records


def corrupt_rows(table: pa.Table) -> np.ndarray:
    """Indices of the rows whose payload must be corrupted."""
    if "corrupt" not in table.schema.names or not pc.any(table.column("corrupt")).as_py():
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero(table.column("corrupt").to_numpy(zero_copy_only=False))
