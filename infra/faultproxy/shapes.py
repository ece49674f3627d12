"""Error answers as each service sends them: JSON ``__type`` for Kinesis, DynamoDB and Glue (the shapes
botocore's JSON protocol parses), XML ``<Error><Code>`` for S3."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from infra.faultproxy.spec import FaultKind

JSON_TYPES: Final = {
    "kinesis": "application/x-amz-json-1.1",
    "dynamodb": "application/x-amz-json-1.0",
    "glue": "application/x-amz-json-1.1",
}
_DYNAMO_PREFIX: Final = "com.amazonaws.dynamodb.v20120810#"

# (status, code) per service and fault; DynamoDB answers either throttling code, chosen per request
_THROTTLE: Final = {
    "kinesis": [(400, "ProvisionedThroughputExceededException")],
    "dynamodb": [(400, "ProvisionedThroughputExceededException"), (400, "ThrottlingException")],
    "glue": [(400, "ThrottlingException")],
    "s3": [(503, "SlowDown")],
}
_SERVER_ERROR: Final = {
    "kinesis": [(500, "InternalFailure"), (503, "ServiceUnavailable")],
    "dynamodb": [(500, "InternalServerError"), (503, "ServiceUnavailable")],
    "glue": [(500, "InternalServiceException"), (503, "ServiceUnavailable")],
    "s3": [(500, "InternalError"), (503, "ServiceUnavailable")],
}


@dataclass(frozen=True)
class Answer:
    """An HTTP answer the proxy sends itself."""

    status: int
    content_type: str
    body: bytes
    code: str


def error(service: str, kind: FaultKind, choice: int, message: str) -> Answer:
    """The answer for an injected ``throttle`` or ``server_error`` (``choice`` picks among codes)."""
    table = _THROTTLE if kind == "throttle" else _SERVER_ERROR
    options = table.get(service, table["kinesis"])
    status, code = options[choice % len(options)]
    return shaped(service, status, code, message)


def shaped(service: str, status: int, code: str, message: str) -> Answer:
    """``code`` with ``message`` in ``service``'s wire shape."""
    if service == "s3":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>"
        ).encode()
        return Answer(status, "application/xml", body, code)
    type_ = f"{_DYNAMO_PREFIX}{code}" if service == "dynamodb" else code
    body = json.dumps({"__type": type_, "message": message}).encode()
    return Answer(status, JSON_TYPES.get(service, "application/x-amz-json-1.1"), body, code)
