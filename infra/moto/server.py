"""moto's server mode with two costs of its GetRecords answers removed; same answers, byte for byte.

Profiled under the pipeline's throughput benchmark (issue 22), the emulator spent about half its time on
work that changes nothing in a Kinesis answer:

- ``BaseResponse._enrich_response`` runs a look-behind regex for ``<RequestId>`` over every body; on a
  2 MB JSON GetRecords answer that is a slow full scan that never matches. It now runs only when the body
  holds that tag (an XML answer), so every answer is the one moto gives.
- A record's ``Data`` is kept as the base64 text the client sent; ``Record.to_json`` decoded it and the
  response serializer encoded it again. It now goes out as kept. boto3 (every producer here) sends
  canonical base64, which the round trip returns unchanged; only a hand-made request with non-canonical
  base64 would get its own text back rather than the canonical one.

The command line still names ``moto.server`` (``infra.emulator.server_process`` finds the process by it).
"""

from __future__ import annotations

from typing import Any

from moto import server
from moto.core import serialize
from moto.core.responses import BaseResponse
from moto.kinesis.models import Record


class _Base64Text(str):
    """Record data that is base64 text already: the serializer sends it as it is."""


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


_ORIGINAL_ENRICH = BaseResponse._enrich_response
_ORIGINAL_BASE64 = serialize.ResponseSerializer._base64


def install() -> None:
    """Replace the two costly steps in this process (the server's, before it serves)."""
    BaseResponse._enrich_response = staticmethod(_enrich_response)  # type: ignore[method-assign]
    Record.to_json = _record_json  # type: ignore[method-assign]
    serialize.ResponseSerializer._base64 = _base64  # type: ignore[method-assign]


if __name__ == "__main__":
    install()
    server.main()
