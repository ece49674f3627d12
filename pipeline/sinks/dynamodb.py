"""Alerts to DynamoDB: one conditional ``PutItem`` per alert (``attribute_not_exists(alert_id)``),
issued from a thread pool, with a TTL attribute ``expires_at`` (epoch seconds). Throttling and transient
errors are retried by the client's one retry policy (``pipeline.aws.MAX_ATTEMPTS``), not again here. The
table's layout is ``pipeline.tables.DynamoTableDef``.

``BatchWriteItem`` cannot carry conditions, and ``TransactWriteItems`` fails the whole transaction when
one alert already exists (a re-run batch), so conditional single puts in parallel are used: an existing
id is simply not written again.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import pyarrow as pa

from core.errors import SinkError
from pipeline.alerts import ALERT_SCHEMA
from pipeline.aws import client, failure
from pipeline.config import Config
from pipeline.sinks.base import AlertSink, now_us
from pipeline.tables import FEED_ATTRIBUTE, FEED_VALUE, DynamoTableDef, alerts_dynamo_table


def to_item(row: dict[str, Any], ts_written: int, ttl_hours: int, layout: DynamoTableDef) -> dict[str, Any]:
    """An alert row as a DynamoDB item (low-level attribute values), expiring ``ttl_hours`` after it
    was written, with the attribute of the index over all alerts (``FEED_ATTRIBUTE``)."""
    item: dict[str, Any] = {}
    for name, value in row.items():
        if value is None or name == "ts_written":
            continue
        if name == "event_ids":
            item[name] = {"L": [{"S": str(v)} for v in value]}
        elif isinstance(value, (bool, str)):
            item[name] = {"S": str(value)}
        elif isinstance(value, float) and not math.isfinite(value):
            item[name] = {"S": json.dumps(value)}
        else:
            item[name] = {"N": repr(value)}
    item["ts_written"] = {"N": str(ts_written)}
    item[FEED_ATTRIBUTE] = {"S": FEED_VALUE}
    item[layout.ttl_attribute] = {"N": str(ts_written // 1_000_000 + ttl_hours * 3600)}
    return item


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB alert item (low-level attribute values) as the alert row ``to_item`` wrote, with
    ``ts_written`` and the TTL attribute; the index attribute (``FEED_ATTRIBUTE``) is dropped."""
    row: dict[str, Any] = {}
    for name, value in item.items():
        if name == FEED_ATTRIBUTE:
            continue
        if "L" in value:
            row[name] = [v["S"] for v in value["L"]]
        elif "N" in value:
            # the float columns are the schema's; every other number (times, the TTL) is an integer
            row[name] = float(value["N"]) if name in _FLOAT_COLUMNS else int(value["N"])
        elif name in _FLOAT_COLUMNS:  # a non-finite number, written as JSON text
            row[name] = float(json.loads(value["S"]))
        else:
            row[name] = value["S"]
    return row


_FLOAT_COLUMNS = frozenset(f.name for f in ALERT_SCHEMA if pa.types.is_floating(f.type))


class DynamoAlertSink(AlertSink):
    """Conditional puts into ``config.dynamodb.alerts_table``."""

    name: ClassVar[str] = "dynamodb"

    def __init__(self, config: Config, threads: int = 8) -> None:
        self.layout = alerts_dynamo_table(config)
        self.table = self.layout.name
        self.ttl_hours = config.dynamodb.ttl_hours
        self.runtime = config.runtime
        self.client = client("dynamodb", config.runtime)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dynamo-alerts")
        self.written = 0
        self.skipped = 0

    def open(self) -> None:
        """Fail early, with what to do, when the alerts table does not exist."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.describe_table(TableName=self.table)
        except ClientError as e:
            raise SinkError(
                f"DynamoDB table {self.table!r} is not reachable ({e}); provision the stack first "
                "(`coattail up`)"
            ) from e
        except BotoCoreError as e:
            raise SinkError(failure("dynamodb", self.runtime, f"opening table {self.table!r}", e)) from e

    def close(self) -> None:
        """Stop the worker threads."""
        self.pool.shutdown(wait=True)

    def _put(self, rows: list[dict[str, object]]) -> list[int]:
        # counted here, on the calling thread, from the workers' results: no shared counters
        results = list(self.pool.map(self._put_one, rows))
        written = sum(new for _, new in results)
        self.written += written
        self.skipped += len(results) - written
        return [stamp for stamp, _ in results]

    def _put_one(self, row: dict[str, Any]) -> tuple[int, bool]:
        """Put one alert unless its id exists -> (ts_written, whether it was new)."""
        from botocore.exceptions import BotoCoreError, ClientError

        stamp = now_us()
        try:
            self.client.put_item(
                TableName=self.table,
                Item=to_item(row, stamp, self.ttl_hours, self.layout),
                ConditionExpression=f"attribute_not_exists({self.layout.key})",
            )
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                return stamp, False
            attempts = e.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
            raise SinkError(
                f"DynamoDB put of alert {row['alert_id']} failed after {attempts} attempts: {code} {e}"
            ) from e
        except BotoCoreError as e:
            doing = f"putting alert {row['alert_id']} into table {self.table!r}"
            raise SinkError(failure("dynamodb", self.runtime, doing, e)) from e
        return stamp, True
