"""What the fault proxy injects: rates per fault kind, the seed, and the AWS limits it enforces."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from core.frozen import Frozen

FaultKind = Literal["throttle", "server_error", "reset", "slow", "lost_response"]
FAULT_KINDS: Final[tuple[FaultKind, ...]] = ("throttle", "server_error", "reset", "slow", "lost_response")


class KinesisLimits(Frozen):
    """Kinesis Data Streams' per-shard quotas (provisioned mode), as AWS documents them."""

    write_records_per_s: int = Field(1_000, gt=0)
    write_bytes_per_s: int = Field(1 << 20, gt=0)
    read_calls_per_s: int = Field(5, gt=0)
    read_bytes_per_s: int = Field(2 << 20, gt=0)


class ProxySpec(Frozen):
    """Fault rates (each the probability that one request gets that fault) and the limits to enforce.

    - ``throttle``: the service's throttling error (Kinesis and DynamoDB
      ``ProvisionedThroughputExceededException``, DynamoDB ``ThrottlingException``, Glue
      ``ThrottlingException``, S3 ``SlowDown``), never forwarded.
    - ``server_error``: a 500 or 503 in the service's shape, never forwarded.
    - ``reset``: the connection is reset before the request is forwarded.
    - ``slow``: the request is forwarded ``slow_ms`` late.
    - ``lost_response``: forwarded, then the connection is reset instead of answering; only for
      requests that are safe to repeat (reads, conditional puts, S3 object writes under unique keys): a
      repeated Kinesis put would put its records twice, as on AWS, which is the producer's contract and
      not a fault of ours.

    ``max_consecutive`` bounds the injected faults in a row on one operation, so a client retrying
    within its documented budget always gets through; limits are enforced regardless (they are not
    faults but the service's quotas).
    """

    seed: int = 0
    throttle: float = Field(0.0, ge=0.0, le=1.0)
    server_error: float = Field(0.0, ge=0.0, le=1.0)
    reset: float = Field(0.0, ge=0.0, le=1.0)
    slow: float = Field(0.0, ge=0.0, le=1.0)
    lost_response: float = Field(0.0, ge=0.0, le=1.0)
    slow_ms: int = Field(300, ge=0)
    max_consecutive: int = Field(2, ge=1)
    kinesis_limits: KinesisLimits | None = None
    """None: no quota; ``KinesisLimits()``: AWS's."""

    def rate(self, kind: FaultKind) -> float:
        """The probability of ``kind`` per request."""
        return float(getattr(self, kind))
