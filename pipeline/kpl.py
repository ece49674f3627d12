"""The Kinesis Producer Library (KPL) aggregation format: many user records in one Kinesis record.

Layout of an aggregated record, as the AWS KPL writes it and the KCL reads it::

    0xF3 0x89 0x9A 0xC2 | protobuf AggregatedRecord | MD5(protobuf bytes) (16 bytes)

    message AggregatedRecord {
      repeated string partition_key_table     = 1;
      repeated string explicit_hash_key_table = 2;
      repeated Record records                 = 3;
    }
    message Record {
      required uint64 partition_key_index     = 1;
      optional uint64 explicit_hash_key_index = 2;
      required bytes  data                    = 3;
      repeated Tag    tags                    = 4;   // ignored here
    }

The protobuf subset is hand-written (varints and length-delimited fields only), so neither the producer
(the replay) nor the consumer (the pipeline's Kinesis source) needs a protobuf dependency.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Final, NamedTuple, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import SchemaError

MAGIC: Final = b"\xf3\x89\x9a\xc2"
DIGEST_BYTES: Final = 16
MAX_RECORD_BYTES: Final = 1024 * 1024
"""Kinesis' limit on one record (data plus partition key)."""

_WIRE_VARINT: Final = 0
_WIRE_LEN: Final = 2
_WIRE_FIXED64: Final = 1
_WIRE_FIXED32: Final = 5
_RECORDS_FIELD: Final = 3
"""``AggregatedRecord.records``: one per user record."""

Buffer = TypeVar("Buffer", bytes, memoryview)


class Aggregate(NamedTuple):
    """One Kinesis record produced by ``aggregate``: its partition key, its bytes, how many user records."""

    partition_key: str
    data: bytes
    user_records: int


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _varint_len(value: int) -> int:
    n = 1
    while value >= 0x80:
        value >>= 7
        n += 1
    return n


def encode_aggregate(records: Sequence[tuple[str, bytes]]) -> bytes:
    """Encode user records ``(partition_key, data)`` as one aggregated record (magic, protobuf, MD5)."""
    if not records:
        raise SchemaError("an aggregated record needs at least one user record")
    keys: dict[str, int] = {}
    body = [_entry(keys.setdefault(key, len(keys)), data) for key, data in records]
    return _frame(list(keys), body)


def _entry(index: int, data: bytes) -> bytes:
    inner = b"\x08" + _varint(index) + b"\x1a" + _varint(len(data)) + data
    return b"\x1a" + _varint(len(inner)) + inner


def _frame(keys: list[str], body: list[bytes]) -> bytes:
    return _frame_body(keys, b"".join(body))


def _frame_body(keys: list[str], body: bytes | memoryview) -> bytes:
    table = b"".join(b"\x0a" + _varint(len(raw)) + raw for raw in (k.encode() for k in keys))
    digest = hashlib.md5(table)
    digest.update(body)
    return b"".join((MAGIC, table, body, digest.digest()))  # one copy of the (up to 1 MiB) body


def aggregate(records: Iterable[tuple[str, bytes]], *, max_bytes: int = MAX_RECORD_BYTES) -> list[Aggregate]:
    """Pack user records ``(partition_key, data)`` into aggregated Kinesis records (``aggregate_arrays``)."""
    pairs = list(records)
    keys = pa.array([k for k, _ in pairs], type=pa.string())
    data = pa.array([d for _, d in pairs], type=pa.binary())
    return aggregate_arrays(keys, data, max_bytes=max_bytes)


def aggregate_arrays(
    keys: pa.Array | pa.ChunkedArray, data: pa.Array | pa.ChunkedArray, *, max_bytes: int = MAX_RECORD_BYTES
) -> list[Aggregate]:
    """Pack user records given as Arrow arrays into aggregated Kinesis records, one key per aggregate.

    User records are grouped by partition key in arrival order, so the order of each key's records is
    kept inside and across the aggregates; an aggregate (plus its key) never exceeds ``max_bytes``.
    Aggregates are returned in the order in which their key first appeared. A single user record too
    large for a Kinesis record is a ``SchemaError``. The protobuf framing of every record is built with
    NumPy and Arrow, so the cost per record is a few array operations, not a Python call.
    """
    n = len(data)
    if n == 0:
        return []
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    if isinstance(data, pa.ChunkedArray):
        data = data.combine_chunks()
    encoded = pc.dictionary_encode(keys.cast(pa.string()))
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    names: list[str] = encoded.dictionary.to_pylist()
    order = np.argsort(codes, kind="stable")
    payload = data.cast(pa.large_binary()).take(pa.array(order))
    lengths = pc.binary_length(payload).to_numpy(zero_copy_only=False).astype(np.int64)
    inner = 3 + _vlen(lengths) + lengths  # index field (2 bytes) + data tag + length + data
    entries = pc.binary_join_element_wise(
        _prefixes(inner, lengths), payload, pa.scalar(b"", pa.large_binary())
    )
    offsets = np.frombuffer(entries.buffers()[1], dtype=np.int64)[entries.offset : entries.offset + n + 1]
    values = entries.buffers()[2]
    sizes = np.diff(offsets)
    sorted_codes = codes[order]
    bounds = np.flatnonzero(np.diff(sorted_codes)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [n]))
    unique_codes, first_index = np.unique(codes, return_index=True)
    first_seen = dict(zip(unique_codes.tolist(), first_index.tolist(), strict=True))
    out: list[Aggregate] = []
    groups = sorted(
        zip(starts.tolist(), ends.tolist(), strict=True), key=lambda ab: first_seen[int(sorted_codes[ab[0]])]
    )
    for a, b in groups:
        key = names[int(sorted_codes[a])]
        raw_key = key.encode()
        fixed = len(MAGIC) + DIGEST_BYTES + 1 + _varint_len(len(raw_key)) + 2 * len(raw_key)
        if fixed + int(sizes[a:b].max()) > max_bytes:
            raise SchemaError(
                f"a user record for key {key!r} does not fit a Kinesis record of {max_bytes} bytes even alone"
            )
        cum = np.cumsum(sizes[a:b])
        i = 0
        while i < b - a:
            base = int(cum[i - 1]) if i else 0
            j = int(np.searchsorted(cum, base + max_bytes - fixed, side="right"))
            body = memoryview(values[int(offsets[a + i]) : int(offsets[a + j])])
            out.append(Aggregate(key, _frame_body([key], body), j - i))
            i = j
    return out


def _vlen(values: np.ndarray) -> np.ndarray:
    """Bytes of the varint encoding of each value (values below 2**28)."""
    return 1 + (values >= 1 << 7) + (values >= 1 << 14) + (values >= 1 << 21)


def _prefixes(inner: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """Per record: the field-3 tag, varint(inner), ``08 00`` (key index 0), ``1a``, varint(length)."""
    n_inner, n_len = _vlen(inner), _vlen(lengths)
    size = 1 + n_inner + 3 + n_len
    offsets = np.zeros(len(inner) + 1, dtype=np.int64)
    np.cumsum(size, out=offsets[1:])
    buf = np.zeros(int(offsets[-1]), dtype=np.uint8)
    start = offsets[:-1]
    buf[start] = 0x1A
    _put_varint(buf, start + 1, inner, n_inner)
    tail = start + 1 + n_inner
    buf[tail] = 0x08
    buf[tail + 1] = 0x00
    buf[tail + 2] = 0x1A
    _put_varint(buf, tail + 3, lengths, n_len)
    return pa.Array.from_buffers(
        pa.large_binary(), len(inner), [None, pa.py_buffer(offsets), pa.py_buffer(buf)]
    )


def _put_varint(buf: np.ndarray, at: np.ndarray, values: np.ndarray, nbytes: np.ndarray) -> None:
    for k in range(4):
        rows = nbytes > k
        if not rows.any():
            return
        byte = (values[rows] >> (7 * k)) & 0x7F
        more = nbytes[rows] > k + 1
        buf[at[rows] + k] = (byte | np.where(more, 0x80, 0)).astype(np.uint8)


def is_aggregated(data: bytes) -> bool:
    """Whether a Kinesis record's data starts with the KPL magic."""
    return data[:4] == MAGIC


def deaggregate(data: bytes, partition_key: str = "") -> list[tuple[str, bytes]]:
    """The user records ``(partition_key, data)`` inside one Kinesis record.

    A record without the KPL magic is not aggregated and comes back unchanged as the only element,
    under ``partition_key`` (the Kinesis record's own key). An aggregate with a wrong MD5 or a malformed
    protobuf raises ``SchemaError``.
    """
    if not is_aggregated(data):
        return [(partition_key, data)]
    if len(data) < len(MAGIC) + DIGEST_BYTES:
        raise SchemaError(f"aggregated Kinesis record of {len(data)} bytes is too short to hold its MD5")
    message = data[len(MAGIC) : -DIGEST_BYTES]
    if hashlib.md5(message).digest() != data[-DIGEST_BYTES:]:
        raise SchemaError("aggregated Kinesis record fails its MD5 check: the record is corrupt")
    keys: list[str] = []
    raw_records: list[bytes] = []
    for field, value in _fields(message):
        if field == 1:
            keys.append(_text(value))
        elif field == _RECORDS_FIELD:
            raw_records.append(_as_bytes(value))
    out: list[tuple[str, bytes]] = []
    for raw in raw_records:
        index: int | None = None
        payload: bytes | None = None
        for field, value in _fields(raw):
            if field == 1:
                index = _as_int(value)
            elif field == 3:
                payload = _as_bytes(value)
        if index is None or payload is None:
            raise SchemaError("aggregated Kinesis record holds a user record without key index or data")
        if index >= len(keys):
            raise SchemaError(
                f"aggregated Kinesis record: key index {index} beyond its key table of {len(keys)}"
            )
        out.append((keys[index], payload))
    return out


class UserRecordSpans(NamedTuple):
    """Where the user records of one aggregate lie in its bytes (``locate_user_records``)."""

    keys: list[str]
    """The aggregate's partition key table."""
    key_index: np.ndarray
    """Per user record, its key's index in ``keys``."""
    starts: np.ndarray
    """Per user record, where its data starts in the Kinesis record's bytes."""
    lengths: np.ndarray
    """Per user record, its data's length."""


def locate_user_records(data: bytes) -> UserRecordSpans | None:
    """Where each user record of an aggregate lies, without copying any, for the layout producers write:
    the key table first, then records holding only a key index and their data (this module's
    ``aggregate`` and the AWS KPL without explicit hash keys or tags).

    None for anything else (not aggregated, other fields or order, a wrong MD5, malformed): ``deaggregate``
    is the reference and decides those. Only the walk from one record to the next is a Python loop; each
    record's own fields are read with NumPy across the aggregate.
    """
    if not is_aggregated(data) or len(data) < len(MAGIC) + DIGEST_BYTES:
        return None
    end = len(data) - DIGEST_BYTES
    if hashlib.md5(memoryview(data)[len(MAGIC) : end]).digest() != data[end:]:
        return None
    walked = _walk(data)
    if walked is None:
        return None
    keys, entries, sizes = walked
    buf = np.frombuffer(data, dtype=np.uint8)
    at = np.array(entries, dtype=np.int64)
    size = np.array(sizes, dtype=np.int64)
    head = np.take(buf, at[:, None] + np.arange(6), mode="clip").astype(np.int64)
    # 08 <index> 1a <length varint, 1-3 bytes> <data>: the data must fill the record exactly
    low = head[:, 3:] & 0x7F
    more = head[:, 3:] >= 0x80
    width = np.where(~more[:, 0], 1, np.where(~more[:, 1], 2, np.where(~more[:, 2], 3, 0)))
    data_len = low[:, 0] + (width > 1) * (low[:, 1] << 7) + (width > 2) * (low[:, 2] << 14)
    ok = (
        (size >= 4) & (head[:, 0] == 0x08) & (head[:, 1] < min(len(keys), 0x80)) & (head[:, 2] == 0x1A)
        & (width > 0) & (3 + width + data_len == size)
    )
    if not ok.all():
        return None
    return UserRecordSpans(keys, head[:, 1], at + 3 + width, data_len)


def _walk(data: bytes) -> tuple[list[str], list[int], list[int]] | None:
    """An aggregate's key table, then where each of its records starts and how long it is; None unless
    the protobuf is exactly a key table followed by records, all inside it (its MD5 is not checked)."""
    end = len(data) - DIGEST_BYTES
    keys: list[str] = []
    entries: list[int] = []
    sizes: list[int] = []
    pos = len(MAGIC)
    try:
        while pos < end and data[pos] == 0x0A:  # partition_key_table
            length, pos = _read_varint(data, pos + 1)
            keys.append(data[pos : pos + length].decode())
            pos += length
        while pos < end:
            if data[pos] != 0x1A:  # anything but a record: the reference reads it
                return None
            first, second = data[pos + 1], data[pos + 2]  # a record's length: two bytes, mostly
            if first < 0x80:
                length, pos = first, pos + 2
            elif second < 0x80:
                length, pos = (first & 0x7F) | second << 7, pos + 3
            else:
                length, pos = _read_varint(data, pos + 1)
            entries.append(pos)
            sizes.append(length)
            pos += length
    except (SchemaError, UnicodeDecodeError, IndexError):
        return None
    if pos != end or not entries:  # a field ran past the protobuf (into the MD5)
        return None
    return keys, entries, sizes


def count_user_records(data: bytes) -> int:
    """How many user records a Kinesis record holds, from the protobuf's top-level fields only.

    Cheaper than ``deaggregate`` (no MD5, nothing copied), for a reader's batch budget. A record that
    is not a well-formed aggregate counts as one, which is what a reader keeps of it (whole, to be
    quarantined).
    """
    if not is_aggregated(data) or len(data) < len(MAGIC) + DIGEST_BYTES:
        return 1
    walked = _walk(data)  # the usual layout, quickly
    if walked is not None:
        return len(walked[1])
    try:
        count = sum(
            field == _RECORDS_FIELD for field, _ in _fields(memoryview(data)[len(MAGIC) : -DIGEST_BYTES])
        )
    except SchemaError:
        return 1
    return max(count, 1)


def _fields(buf: Buffer) -> Iterator[tuple[int, int | Buffer]]:
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = _read_varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == _WIRE_VARINT:
            value, pos = _read_varint(buf, pos)
            yield field, value
        elif wire == _WIRE_LEN:
            length, pos = _read_varint(buf, pos)
            if pos + length > end:
                raise SchemaError("aggregated Kinesis record: a field runs past the end of its message")
            yield field, buf[pos : pos + length]
            pos += length
        elif wire == _WIRE_FIXED64:
            pos += 8
        elif wire == _WIRE_FIXED32:
            pos += 4
        else:
            raise SchemaError(f"aggregated Kinesis record: unsupported protobuf wire type {wire}")
    if pos != end:
        raise SchemaError("aggregated Kinesis record: truncated protobuf field")


def _read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    if pos < len(buf) and buf[pos] < 0x80:  # tags and small lengths: most varints are one byte
        return buf[pos], pos + 1
    result, shift = 0, 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise SchemaError("aggregated Kinesis record: truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _as_int(value: int | bytes) -> int:
    if not isinstance(value, int):
        raise SchemaError("aggregated Kinesis record: expected a varint field")
    return value


def _as_bytes(value: int | bytes) -> bytes:
    if isinstance(value, int):
        raise SchemaError("aggregated Kinesis record: expected a length-delimited field")
    return value


def _text(value: int | bytes) -> str:
    try:
        return _as_bytes(value).decode()
    except UnicodeDecodeError as e:
        raise SchemaError("aggregated Kinesis record: a partition key is not UTF-8") from e
