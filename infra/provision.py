"""Provisioning of the pipeline's AWS resources and Iceberg tables from one spec derived from the tier config.

The same code provisions the embedded emulator, kinesis-mock, LocalStack (docker-compose.yml) and, past
the guard, real AWS: the target is chosen by endpoint URL alone (``pipeline.aws.client``). Provisioning is
idempotent: what exists and matches the spec is left alone; what exists but contradicts the spec (a
stream with another shard count, a table with another key) is an error that says what to do, never a
silent change. The DynamoDB alerts table and the Iceberg tables come from their definitions in
``pipeline.tables``; the Iceberg tables are created in the profile's catalog (SQLite under the state
directory for ``lite``, Glue + S3 otherwise) exactly as the pipeline's sink would create them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from core.errors import CoattailError, StackError
from pipeline.aws import client, endpoint_for
from pipeline.config import Config, RuntimeSettings
from pipeline.sinks.iceberg import create_table, load_catalog, partition_columns
from pipeline.tables import DynamoTableDef, TableDef, alerts_dynamo_table, all_tables, tables_named

ResourceState = Literal["created", "updated", "exists", "missing", "leftover", "removed"]


@dataclass(frozen=True)
class StreamSpec:
    """A Kinesis data stream."""

    name: str
    shards: int


@dataclass(frozen=True)
class IcebergSpec:
    """Iceberg tables in one namespace, named after their ``pipeline.tables`` definitions (names keep
    the spec storable as JSON in ``stack.json``)."""

    namespace: str
    warehouse_bucket: str
    tables: tuple[str, ...]


@dataclass(frozen=True)
class StackSpec:
    """Every resource a tier needs."""

    streams: tuple[StreamSpec, ...]
    alerts_table: DynamoTableDef
    buckets: tuple[str, ...]
    glue_database: str
    iceberg: IcebergSpec

    @classmethod
    def from_config(cls, config: Config) -> StackSpec:
        """The spec of ``config``'s tier."""
        buckets = dict.fromkeys((config.storage.warehouse_bucket, config.storage.checkpoint_bucket))
        return cls(
            streams=(StreamSpec(config.kinesis.stream, config.kinesis.shards),),
            alerts_table=alerts_dynamo_table(config),
            buckets=tuple(buckets),
            glue_database=config.storage.glue_database,
            iceberg=IcebergSpec(
                namespace=config.storage.namespace,
                warehouse_bucket=config.storage.warehouse_bucket,
                tables=tuple(t.name for t in all_tables(config)),
            ),
        )


@dataclass(frozen=True)
class Resource:
    """One resource's state after provisioning or inspection."""

    kind: str
    name: str
    state: ResourceState
    detail: str = ""


def provision(spec: StackSpec, runtime: RuntimeSettings, *, timeout_s: float = 60.0) -> list[Resource]:
    """Create what is missing, wait until it is usable, and report every resource."""
    return _Reconciler(runtime, create=True, timeout_s=timeout_s).run(spec)


def inspect(spec: StackSpec, runtime: RuntimeSettings) -> list[Resource]:
    """Report every resource of ``spec`` without changing anything (missing ones say so)."""
    return _Reconciler(runtime, create=False, timeout_s=0.0).run(spec)


@contextmanager
def translated(kind: str, name: str, endpoint: str | None) -> Iterator[None]:
    """boto3 errors become ``StackError`` naming the resource and the endpoint."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as e:
        where = endpoint or "AWS"
        raise StackError(
            f"{kind} {name!r} on {where}: {e}; is the stack up? (`coattail status`, `coattail up`)"
        ) from e


@contextmanager
def catalog_errors(runtime: RuntimeSettings) -> Iterator[None]:
    """Errors of the Iceberg catalog become ``StackError`` naming the profile (ours pass through)."""
    try:
        yield
    except CoattailError:
        raise
    except Exception as e:  # pyiceberg and its catalogs raise many unrelated types
        raise StackError(
            f"Iceberg catalog of profile {runtime.profile!r}: {e}; is the stack up? "
            "(`coattail status`, `coattail up`)"
        ) from e


def _error_code(e: Exception) -> str:
    response: dict[str, Any] = getattr(e, "response", {}) or {}
    code: str = response.get("Error", {}).get("Code", "")
    return code


class _Reconciler:
    """Walks a spec resource by resource, creating (or only inspecting) each."""

    def __init__(self, runtime: RuntimeSettings, *, create: bool, timeout_s: float) -> None:
        self.runtime = runtime
        self.create = create
        self.timeout_s = timeout_s
        self._clients: dict[str, Any] = {}

    def run(self, spec: StackSpec) -> list[Resource]:
        resources = [self._stream(s) for s in spec.streams]
        resources.append(self._table(spec.alerts_table))
        resources.extend(self._bucket(b) for b in spec.buckets)
        resources.append(self._glue_database(spec.glue_database))
        # after the buckets and the database: a Glue catalog keeps its tables there
        resources.extend(self._iceberg_tables(spec.iceberg))
        return resources

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = client(service, self.runtime)
        return self._clients[service]

    def _wait(self, what: str, probe: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not probe():
            if time.monotonic() > deadline:
                raise StackError(f"{what} did not become ACTIVE within {self.timeout_s:.0f} s")
            time.sleep(0.1)

    # --- Kinesis ------------------------------------------------------------------------------------

    def _stream(self, spec: StreamSpec) -> Resource:
        kinesis = self._client("kinesis")
        kind = "kinesis stream"
        with translated(kind, spec.name, endpoint_for("kinesis", self.runtime)):
            summary = self._stream_summary(kinesis, spec.name)
            state: ResourceState = "exists"
            if summary is None:
                if not self.create:
                    return Resource(kind, spec.name, "missing", f"want {spec.shards} shards")
                try:
                    kinesis.create_stream(StreamName=spec.name, ShardCount=spec.shards)
                    state = "created"
                except kinesis.exceptions.ResourceInUseException:
                    pass  # created concurrently by another process: it exists now
            if self.create:
                self._wait(
                    f"kinesis stream {spec.name!r}",
                    lambda: (self._stream_summary(kinesis, spec.name) or {}).get("StreamStatus") == "ACTIVE",
                )
                summary = self._stream_summary(kinesis, spec.name)
            assert summary is not None  # it existed, or was created and waited for
            shards = int(summary.get("OpenShardCount", 0))
            if shards != spec.shards:
                raise StackError(
                    f"kinesis stream {spec.name!r} has {shards} open shards but the tier wants "
                    f"{spec.shards}; restart the local stack for this tier (`coattail down`, then "
                    "`coattail up --tier ...`) or change kinesis.shards"
                )
            return Resource(kind, spec.name, state, f"{shards} shards, {summary['StreamStatus']}")

    @staticmethod
    def _stream_summary(kinesis: Any, name: str) -> dict[str, Any] | None:
        try:
            summary: dict[str, Any] = kinesis.describe_stream_summary(StreamName=name)[
                "StreamDescriptionSummary"
            ]
        except kinesis.exceptions.ResourceNotFoundException:
            return None
        return summary

    # --- DynamoDB -----------------------------------------------------------------------------------

    def _table(self, spec: DynamoTableDef) -> Resource:
        dynamodb = self._client("dynamodb")
        kind = "dynamodb table"
        with translated(kind, spec.name, endpoint_for("dynamodb", self.runtime)):
            table = self._describe_table(dynamodb, spec.name)
            state: ResourceState = "exists"
            if table is None:
                if not self.create:
                    return Resource(kind, spec.name, "missing", f"want key {spec.key}")
                try:
                    dynamodb.create_table(**table_definition(spec))
                    state = "created"
                except dynamodb.exceptions.ResourceInUseException:
                    pass
                self._wait(
                    f"dynamodb table {spec.name!r}",
                    lambda: (self._describe_table(dynamodb, spec.name) or {}).get("TableStatus") == "ACTIVE",
                )
                table = self._describe_table(dynamodb, spec.name)
                assert table is not None
            _check_table_layout(spec, table)
            ttl = dynamodb.describe_time_to_live(TableName=spec.name)["TimeToLiveDescription"]
            ttl_on = ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
            if ttl_on and ttl.get("AttributeName") != spec.ttl_attribute:
                raise StackError(
                    f"dynamodb table {spec.name!r} has TTL on {ttl.get('AttributeName')!r}, the alert sink "
                    f"writes {spec.ttl_attribute!r}; delete the table or restart the local stack"
                )
            if not ttl_on and self.create:
                dynamodb.update_time_to_live(
                    TableName=spec.name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
                )
                ttl_on = True
                if state == "exists":
                    state = "updated"
            detail = (
                f"key {spec.key}, ttl {spec.ttl_attribute if ttl_on else 'OFF'}, "
                f"indexes {', '.join(f'{i.name}({i.partition}, {i.sort})' for i in spec.indexes)}, "
                f"{table['TableStatus']}"
            )
            return Resource(kind, spec.name, state, detail)

    @staticmethod
    def _describe_table(dynamodb: Any, name: str) -> dict[str, Any] | None:
        try:
            table: dict[str, Any] = dynamodb.describe_table(TableName=name)["Table"]
        except dynamodb.exceptions.ResourceNotFoundException:
            return None
        return table

    # --- S3 -----------------------------------------------------------------------------------------

    def _bucket(self, name: str) -> Resource:
        from botocore.exceptions import ClientError

        s3 = self._client("s3")
        kind = "s3 bucket"
        with translated(kind, name, endpoint_for("s3", self.runtime)):
            try:
                s3.head_bucket(Bucket=name)
                return Resource(kind, name, "exists")
            except ClientError as e:
                if _error_code(e) not in ("404", "NoSuchBucket", "NotFound"):
                    raise
            if not self.create:
                return Resource(kind, name, "missing")
            options: dict[str, Any] = {"Bucket": name}
            if self.runtime.region != "us-east-1":
                options["CreateBucketConfiguration"] = {"LocationConstraint": self.runtime.region}
            try:
                s3.create_bucket(**options)
            except s3.exceptions.BucketAlreadyOwnedByYou:
                return Resource(kind, name, "exists")
            return Resource(kind, name, "created")

    # --- Glue ---------------------------------------------------------------------------------------

    def _glue_database(self, name: str) -> Resource:
        glue = self._client("glue")
        kind = "glue database"
        with translated(kind, name, endpoint_for("glue", self.runtime)):
            try:
                glue.get_database(Name=name)
                return Resource(kind, name, "exists")
            except glue.exceptions.EntityNotFoundException:
                if not self.create:
                    return Resource(kind, name, "missing")
            try:
                glue.create_database(DatabaseInput={"Name": name})
            except glue.exceptions.AlreadyExistsException:
                return Resource(kind, name, "exists")
            return Resource(kind, name, "created")

    # --- Iceberg ------------------------------------------------------------------------------------

    def _iceberg_tables(self, spec: IcebergSpec) -> list[Resource]:
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

        kind = "iceberg table"
        definitions = tables_named(spec.tables)
        resources = []
        with catalog_errors(self.runtime):
            catalog = load_catalog(self.runtime, spec.warehouse_bucket)
            for table in definitions:
                ident = f"{spec.namespace}.{table.name}"
                state: ResourceState = "exists"
                if self.create:
                    handle, created = create_table(catalog, spec.namespace, table)
                    state = "created" if created else "exists"
                else:
                    try:
                        handle = catalog.load_table(ident)
                    except (NoSuchTableError, NoSuchNamespaceError):
                        resources.append(Resource(kind, ident, "missing", _layout(table.partition_by)))
                        continue
                resources.append(Resource(kind, ident, state, _check_iceberg_layout(ident, table, handle)))
        return resources


def _layout(partition_by: tuple[str, ...]) -> str:
    return f"partitioned by {', '.join(partition_by)}" if partition_by else "unpartitioned"


def _check_iceberg_layout(ident: str, table: TableDef, handle: Any) -> str:
    """The table's layout as a detail line; ``StackError`` when it contradicts the definition."""
    columns = [f.name for f in handle.schema().fields]
    partitions = partition_columns(handle)
    if columns != table.stored_schema.names or partitions != table.partition_by:
        raise StackError(
            f"iceberg table {ident} exists with columns {columns} partitioned by {list(partitions)}, but its "
            f"definition (pipeline.tables) has {table.stored_schema.names} partitioned by "
            f"{list(table.partition_by)}; drop the table or use another storage.namespace"
        )
    return _layout(partitions)


def table_definition(spec: DynamoTableDef) -> dict[str, Any]:
    """The ``CreateTable`` request of the alerts table (what ``coattail up`` creates)."""
    return {
        "TableName": spec.name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": column, "AttributeType": spec.attribute_type(column)}
            for column in spec.key_attributes
        ],
        "KeySchema": [{"AttributeName": spec.key, "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": index.partition, "KeyType": "HASH"},
                    {"AttributeName": index.sort, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index in spec.indexes
        ],
    }


def _check_table_layout(spec: DynamoTableDef, table: dict[str, Any]) -> None:
    keys = [(k["AttributeName"], k["KeyType"]) for k in table.get("KeySchema", [])]
    indexes = {
        i["IndexName"]: [(k["AttributeName"], k["KeyType"]) for k in i["KeySchema"]]
        for i in table.get("GlobalSecondaryIndexes", [])
    }
    want = {i.name: [(i.partition, "HASH"), (i.sort, "RANGE")] for i in spec.indexes}
    if keys != [(spec.key, "HASH")] or indexes != want:
        raise StackError(
            f"dynamodb table {spec.name!r} exists with key {keys} and indexes {indexes}, but the alert sink "
            f"needs key [({spec.key!r}, 'HASH')] and indexes {want}; delete the table or restart the "
            "local stack (`coattail down`, `coattail up`)"
        )
