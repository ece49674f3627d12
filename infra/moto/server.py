"""moto's server mode with the costs of its Kinesis answers that grow or repeat removed, and its shards
safe for the server's threads; same answers, byte for byte.

Profiled under the pipeline's throughput benchmark (issue 22), the emulator spent about half its time on
work that changes nothing in a Kinesis answer:

- ``BaseResponse._enrich_response`` runs a look-behind regex for ``<RequestId>`` over every body; on a
  2 MB JSON GetRecords answer that is a slow full scan that never matches. It now runs only when the body
  holds that tag (an XML answer), so every answer is the one moto gives.
- A record's ``Data`` is kept as the base64 text the client sent; ``Record.to_json`` decoded it and the
  response serializer encoded it again. It now goes out as kept. boto3 (every producer here) sends
  canonical base64, which the round trip returns unchanged; only a hand-made request with non-canonical
  base64 would get its own text back rather than the canonical one.
- A shard's records are an insertion-ordered dict keyed by sequence numbers ``1, 2, 3 ...``. moto's
  ``put_record`` listed every key to find the last one, and ``get_records`` walked the shard from its
  first record to the iterator's position: both cost grew with everything the shard ever held, so a
  paced run's Kinesis stage and reads slowed down as it went. With the keys dense (always, as moto
  numbers them; the original walk otherwise), the last key is read from the end and a read starts at
  its position by lookup. Same records, sequence numbers and ``MillisBehindLatest``.
- The server answers on threads, and moto's shard is not safe for concurrency: a GetRecords walking a
  shard while a PutRecords added to it failed with ``OrderedDict mutated during iteration`` (an HTTP
  500 the pipeline retried, then gave up on under load), and two concurrent puts could take the same
  sequence number. Each shard's reads and writes now hold one lock.
- moto keeps every record it is given for the life of the process (real Kinesis keeps them 24 h and
  more, on disk). A record's data now lives in an unlinked temporary file (``_Spill``; ``TMPDIR``), read
  back when an answer carries it: the heap keeps only where it is. A market day (9.7M events, 2.6 GB of
  base64) no longer sits in the emulator's RSS; the kernel's page cache holds what fits and the rest
  is on disk, freed when the server exits.

- Every request asks ``moto.backends.list_of_moto_modules`` whether its host names a moto module: a
  listing of moto's package directory and a ``stat`` per entry (a quarter of the server's CPU per
  request at a paced 1x replay). The installed package does not change while the server runs: it is
  listed once.

- A PutRecords request was parsed as JSON three times (moto's ``_get_param`` parses the whole body for
  each of StreamARN, StreamName and Records): at max speed a third of the server's CPU. It is parsed
  once per call now (0.55 -> 0.40-0.48 s of server CPU for the 1-hour whale-day tape's 384,566 events in
  33 calls). Same parameters, same answers. (moto also decodes each record's base64 only to check its
  size; reading the size from the text's length saved another 0.05-0.1 s but changed how the server's
  heap grows: ``test_record_data_stays_out_of_the_servers_memory`` failed on it, so it stays.)

The command line still names ``moto.server`` (``infra.emulator.server_process`` finds the process by it).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from itertools import count
from typing import Any

from moto import backends, server
from moto.core import serialize
from moto.core.responses import ActionResult, BaseResponse
from moto.kinesis.models import Record, Shard
from moto.kinesis.responses import KinesisResponse

SHARD_LOCK = threading.Lock()
"""Held by every shard read and write (the server's threads share the shards; one lock is enough: the
interpreter runs one of them at a time anyway)."""


class _Base64Text(str):
    """Record data that is base64 text already: the serializer sends it as it is."""


class _Spill:
    """An append-only temporary file of record data, unlinked from the start (nothing is left behind,
    even when the server is killed); positions are handed out under a lock, reads need none."""

    def __init__(self) -> None:
        self._fd, path = tempfile.mkstemp(prefix="coattail-moto-records-")
        os.unlink(path)
        self._lock = threading.Lock()
        self._end = 0

    def put(self, text: str) -> tuple[int, int]:
        raw = text.encode("ascii")  # base64 text
        with self._lock:
            at, self._end = self._end, self._end + len(raw)
        os.pwrite(self._fd, raw, at)
        return at, len(raw)

    def get(self, at: int, size: int) -> str:
        return os.pread(self._fd, size, at).decode("ascii")


_SPILL: _Spill | None = None


def _get_data(self: Record) -> str:
    assert _SPILL is not None
    at, size = self.__dict__["_spilled"]
    return _SPILL.get(at, size)


def _set_data(self: Record, text: str) -> None:
    assert _SPILL is not None
    self.__dict__["_spilled"] = _SPILL.put(text)


def _enrich_response(headers: dict[str, str], body: Any) -> tuple[dict[str, str], Any]:
    if isinstance(body, str) and "<RequestId>" in body:
        return _ORIGINAL_ENRICH(headers, body)
    return _ORIGINAL_ENRICH(headers, "")[0], body  # the headers' part only: no tag to rewrite


def _record_json(self: Record) -> dict[str, Any]:
    return {
        "Data": _Base64Text(self.data),
        "PartitionKey": self.partition_key,
        "SequenceNumber": str(self.sequence_number),
        "ApproximateArrivalTimestamp": self.created_at_datetime,
    }


def _base64(self: serialize.ResponseSerializer, value: str | bytes) -> str:
    if type(value) is _Base64Text:
        return str.__str__(value)
    return _ORIGINAL_BASE64(self, value)


def _dense(records: dict[int, Record]) -> bool:
    """The shard's sequence numbers run from its first key to its last without a gap."""
    return not records or next(reversed(records)) - next(iter(records)) + 1 == len(records)


def _get_records(self: Shard, last_sequence_id: str, limit: int | None) -> tuple[list[Record], int, int]:
    """``Shard.get_records`` from the iterator's position by lookup (the original walks from the start)."""
    with SHARD_LOCK:
        records = self.records
        if not _dense(records) or limit == 0:  # (moto's walk gives everything after a first match for 0)
            return _ORIGINAL_GET_RECORDS(self, last_sequence_id, limit)
        last = int(last_sequence_id)
        found: list[Record] = []
        for sequence_number in count(max(last, next(iter(records), 1) - 1) + 1):
            record = records.get(sequence_number)
            if record is None or len(found) == limit:
                break
            found.append(record)
        if not found:
            return found, last, 0
        newest = records[next(reversed(records))]
        return found, found[-1].sequence_number, int((newest.created_at - found[-1].created_at) * 1000)


def _put_record(self: Shard, partition_key: str, data: str, explicit_hash_key: str) -> str:
    """``Shard.put_record`` reading the last sequence number from the end (the original lists every key)."""
    with SHARD_LOCK:
        sequence_number = (next(reversed(self.records)) if self.records else 0) + 1
        self.records[sequence_number] = Record(partition_key, data, sequence_number, explicit_hash_key)
        return str(sequence_number)


def _put_records(self: KinesisResponse) -> ActionResult:
    """``KinesisResponse.put_records`` with the request body parsed once (moto parses it per parameter)."""
    params = json.loads(self.body)
    return ActionResult(
        self.kinesis_backend.put_records(
            params.get("StreamARN"), params.get("StreamName"), params.get("Records")
        )
    )


_ORIGINAL_ENRICH = BaseResponse._enrich_response
_ORIGINAL_BASE64 = serialize.ResponseSerializer._base64
_ORIGINAL_GET_RECORDS = Shard.get_records


def install() -> None:
    """Replace the costly and unsafe steps and keep record data out of the heap in this process (the
    server's, before it serves)."""
    global _SPILL
    _SPILL = _Spill()
    Record.data = property(_get_data, _set_data)  # type: ignore[assignment]
    BaseResponse._enrich_response = staticmethod(_enrich_response)  # type: ignore[method-assign]
    Record.to_json = _record_json  # type: ignore[method-assign]
    serialize.ResponseSerializer._base64 = _base64  # type: ignore[method-assign]
    Shard.get_records = _get_records  # type: ignore[method-assign]
    Shard.put_record = _put_record  # type: ignore[method-assign]
    KinesisResponse.put_records = _put_records  # type: ignore[method-assign]
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules


if __name__ == "__main__":
    install()
    server.main()
