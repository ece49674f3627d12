"""The alert API's reads: DynamoDB queries on the alerts table's indexes (never a scan) and the state of
the stream and the table, with AWS errors translated into API errors (a throttle is a 503)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from core.frozen import Frozen
from pipeline.api.http import ApiError
from pipeline.api.query import AlertQuery
from pipeline.aws import client
from pipeline.config import RuntimeSettings
from pipeline.sinks.base import now_us
from pipeline.sinks.dynamodb import from_item
from pipeline.tables import FEED_ATTRIBUTE, FEED_VALUE, AlertIndex, DynamoTableDef

THROTTLE_CODES: Final = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded", "Throttling"}
)
RETRY_AFTER_S: Final = 1
"""What a 503 after a throttle asks the client to wait (the client's own retries have been spent)."""


class ApiSettings(Frozen):
    """What the handlers query: the alerts table and the stream, and where AWS is."""

    alerts_table: str
    stream: str
    runtime: RuntimeSettings = RuntimeSettings()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ApiSettings:
        """The Lambda's settings from its environment (set by ``infra/terraform/modules/api``):
        ``COATTAIL_ALERTS_TABLE``, ``COATTAIL_STREAM``, ``AWS_REGION``, and either an emulator's
        ``COATTAIL_AWS_ENDPOINT`` or ``COATTAIL_PROFILE=aws`` with ``COATTAIL_ALLOW_REAL_AWS=true``."""
        missing = [k for k in ("COATTAIL_ALERTS_TABLE", "COATTAIL_STREAM") if not env.get(k)]
        if missing:
            raise ApiError(500, "misconfigured", f"the API's environment lacks {', '.join(missing)}")
        runtime = RuntimeSettings(
            profile="aws" if env.get("COATTAIL_PROFILE") == "aws" else "lite",
            aws_endpoint=env.get("COATTAIL_AWS_ENDPOINT") or None,
            region=env.get("AWS_REGION", "us-east-1"),
            allow_real_aws=env.get("COATTAIL_ALLOW_REAL_AWS", "").lower() == "true",
        )
        return cls(alerts_table=env["COATTAIL_ALERTS_TABLE"], stream=env["COATTAIL_STREAM"], runtime=runtime)


@contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """AWS errors as API errors: a throttle is a 503 with ``Retry-After``, anything else a 502 that names
    the call (never a botocore traceback)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code in THROTTLE_CODES:
            raise ApiError(
                503,
                "throttled",
                f"DynamoDB is throttling {what}; retry after {RETRY_AFTER_S} s",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            ) from e
        raise ApiError(502, "backend_error", f"{what} failed: {code}") from e
    except BotoCoreError as e:
        raise ApiError(503, "backend_unreachable", f"{what}: {e}", headers={"Retry-After": "5"}) from e


class AlertStore:
    """Reads of the alerts table and the stream's state."""

    def __init__(
        self,
        dynamodb: Any,
        kinesis: Any,
        layout: DynamoTableDef,
        stream: str,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.dynamodb = dynamodb
        self.kinesis = kinesis
        self.layout = layout
        self.stream = stream
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> AlertStore:
        """A store with clients for ``settings``' endpoint (the guard of ``pipeline.aws`` applies)."""
        return cls(
            client("dynamodb", settings.runtime),
            client("kinesis", settings.runtime),
            DynamoTableDef(settings.alerts_table),
            settings.stream,
        )

    def get(self, alert_id: str) -> dict[str, Any] | None:
        """One alert by id, or None."""
        with aws_errors(f"GetItem on {self.layout.name}"):
            item = self.dynamodb.get_item(TableName=self.layout.name, Key={self.layout.key: {"S": alert_id}})
        found = item.get("Item")
        return from_item(found) if found else None

    def page(self, query: AlertQuery) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One page of alerts, newest first, and the key of its last alert when more may follow.

        DynamoDB applies ``Limit`` before the filter, so pages are read until ``query.limit`` alerts pass
        it; the key returned is the last *returned* alert's, so nothing read past it is skipped.
        """
        index, value = self._index_for(query)
        request = _query_request(self.layout.name, index, value, query.start, query.end)
        filters = {
            name: getattr(query, name)
            for name in ("detector", "kind", "severity")
            if getattr(query, name) is not None and name != index.partition
        }
        if filters:
            request["FilterExpression"] = " AND ".join(f"#f_{n} = :f_{n}" for n in filters)
            request["ExpressionAttributeNames"].update({f"#f_{n}": n for n in filters})
            request["ExpressionAttributeValues"].update({f":f_{n}": {"S": v} for n, v in filters.items()})
        items: list[dict[str, Any]] = []
        start = query.after
        while True:
            if start is not None:
                request["ExclusiveStartKey"] = start
            with aws_errors(f"Query on {self.layout.name}/{index.name}"):
                answer = self.dynamodb.query(Limit=query.limit, **request)
            items.extend(answer.get("Items", []))
            start = answer.get("LastEvaluatedKey")
            if start is None or len(items) >= query.limit:
                break
        more = len(items) > query.limit or start is not None
        items = items[: query.limit]
        last = items[-1] if items and more else None
        key = {a: last[a] for a in (self.layout.key, index.partition, index.sort)} if last else None
        return [from_item(i) for i in items], key

    def _index_for(self, query: AlertQuery) -> tuple[AlertIndex, str]:
        """The narrowest index for the filters: by symbol, else by detector, else over all alerts."""
        if query.symbol is not None:
            return self.layout.index_on("symbol"), query.symbol
        if query.detector is not None:
            return self.layout.index_on("detector"), query.detector
        return self.layout.index_on(FEED_ATTRIBUTE), FEED_VALUE

    def counts(self, symbol: str, start: int, end: int) -> list[tuple[str, str]]:
        """``(detector, severity)`` of each alert of ``symbol`` with ``start <= ts_event <= end``."""
        index = self.layout.index_on("symbol")
        request = _query_request(self.layout.name, index, symbol, start, end)
        request["ProjectionExpression"] = "#p_d, #p_s"
        request["ExpressionAttributeNames"].update({"#p_d": "detector", "#p_s": "severity"})
        out: list[tuple[str, str]] = []
        with aws_errors(f"Query on {self.layout.name}/{index.name}"):
            for page in self.dynamodb.get_paginator("query").paginate(**request):
                out.extend((i["detector"]["S"], i["severity"]["S"]) for i in page.get("Items", []))
        return out

    def latest(self) -> dict[str, Any] | None:
        """The alert with the latest event time, from the index over all alerts."""
        index = self.layout.index_on(FEED_ATTRIBUTE)
        request = _query_request(self.layout.name, index, FEED_VALUE, None, None)
        with aws_errors(f"Query on {self.layout.name}/{index.name}"):
            items = self.dynamodb.query(Limit=1, **request).get("Items", [])
        return from_item(items[0]) if items else None

    def stream_state(self) -> dict[str, Any]:
        """The stream's status and open shards (``status: "UNREACHABLE"`` with the reason when it fails)."""
        try:
            with aws_errors(f"DescribeStreamSummary of {self.stream}"):
                summary = self.kinesis.describe_stream_summary(StreamName=self.stream)
        except ApiError as e:
            return {"name": self.stream, "status": "UNREACHABLE", "open_shards": None, "error": e.message}
        about = summary["StreamDescriptionSummary"]
        return {
            "name": self.stream,
            "status": about["StreamStatus"],
            "open_shards": about.get("OpenShardCount"),
        }

    def table_state(self) -> dict[str, Any]:
        """The table's status and (approximate, as DynamoDB reports it) item count."""
        try:
            with aws_errors(f"DescribeTable of {self.layout.name}"):
                table = self.dynamodb.describe_table(TableName=self.layout.name)["Table"]
        except ApiError as e:
            return {"name": self.layout.name, "status": "UNREACHABLE", "item_count": None, "error": e.message}
        return {
            "name": self.layout.name,
            "status": table["TableStatus"],
            "item_count": table.get("ItemCount"),
        }


def _query_request(
    table: str, index: AlertIndex, value: str, start: int | None, end: int | None
) -> dict[str, Any]:
    """A newest-first ``Query`` of one index partition, bounded in event time where asked."""
    condition = "#k_p = :k_p"
    values: dict[str, Any] = {":k_p": {"S": value}}
    if start is not None or end is not None:
        condition += " AND #k_s BETWEEN :k_lo AND :k_hi"
        values[":k_lo"] = {"N": str(start if start is not None else 0)}
        values[":k_hi"] = {"N": str(end if end is not None else 2**63 - 1)}
    names = {"#k_p": index.partition}
    if "#k_s" in condition:
        names["#k_s"] = index.sort
    return {
        "TableName": table,
        "IndexName": index.name,
        "KeyConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": False,
    }
