"""The resources a run creates for itself on a shared stack, and their removal.

Each ``coattail run`` gets its own Kinesis stream, DynamoDB alerts table and Iceberg namespace, named
after the tier's by a suffix made from the run id (``run_resource_names``), so a run reads back exactly
what it wrote. A run removes them when it ends (unless asked to keep them); what a killed run or a kept
one leaves behind is a *leftover*: ``coattail status`` lists them and ``coattail gc`` removes them. The
tier's own resources (the ones ``coattail up`` provisions) are never touched.
"""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any, Final

from core.errors import StackError
from infra.provision import Resource, StackSpec, catalog_errors, translated
from pipeline.aws import client, endpoint_for
from pipeline.config import Config, RuntimeSettings
from pipeline.sinks.iceberg import load_catalog

STREAM: Final = "kinesis stream"
TABLE: Final = "dynamodb table"
NAMESPACE: Final = "iceberg namespace"
DELETE_TIMEOUT_S: Final = 60.0


def run_resource_names(config: Config, run_id: str) -> dict[str, str]:
    """The config keys and values that give the run ``run_id`` its own stream, table and namespace."""
    suffix = re.sub(r"[^a-z0-9-]", "-", run_id.lower())
    return {
        "kinesis.stream": f"{config.kinesis.stream}-{suffix}",
        "dynamodb.alerts_table": f"{config.dynamodb.alerts_table}-{suffix}",
        "storage.namespace": f"{config.storage.namespace}_{suffix.replace('-', '_')}",
    }


def own_resources(config: Config) -> list[Resource]:
    """A run's own resources, named by its resolved ``config``."""
    return [
        Resource(STREAM, config.kinesis.stream, "exists"),
        Resource(TABLE, config.dynamodb.alerts_table, "exists"),
        Resource(NAMESPACE, config.storage.namespace, "exists"),
    ]


def stream_names(kinesis: Any) -> list[str]:
    """Every stream's name. Paged by ``ExclusiveStartStreamName``: moto answers ``HasMoreStreams``
    without the ``NextToken`` boto3's paginator follows, so the paginator stops after 10 names."""
    names: list[str] = []
    while True:
        after = {"ExclusiveStartStreamName": names[-1]} if names else {}
        page = kinesis.list_streams(Limit=1000, **after)
        names += page["StreamNames"]
        if not page.get("HasMoreStreams") or not page["StreamNames"]:
            return names


def leftovers(spec: StackSpec, runtime: RuntimeSettings) -> list[Resource]:
    """The per-run resources on the stack of ``spec`` (the tier's names followed by a run suffix)."""
    found: list[Resource] = []
    detail = "left by a run; `coattail gc` removes it"
    kinesis = client("kinesis", runtime)
    with translated(STREAM, "*", endpoint_for("kinesis", runtime)):
        names = stream_names(kinesis)
    prefixes = tuple(f"{s.name}-" for s in spec.streams)
    found += [Resource(STREAM, n, "leftover", detail) for n in sorted(names) if n.startswith(prefixes)]
    dynamodb = client("dynamodb", runtime)
    with translated(TABLE, "*", endpoint_for("dynamodb", runtime)):
        tables = [n for page in dynamodb.get_paginator("list_tables").paginate() for n in page["TableNames"]]
    found += [Resource(TABLE, n, "leftover", detail)
              for n in sorted(tables) if n.startswith(f"{spec.alerts_table.name}-")]
    catalog = _catalog(runtime, spec.iceberg.warehouse_bucket)
    with catalog_errors(runtime):
        namespaces = [".".join(ns) for ns in catalog.list_namespaces()]
    found += [Resource(NAMESPACE, n, "leftover", detail)
              for n in sorted(namespaces) if n.startswith(f"{spec.iceberg.namespace}_")]
    return found


def remove(resources: list[Resource], runtime: RuntimeSettings, warehouse_bucket: str) -> list[Resource]:
    """Delete each resource (a namespace with its tables and their files); those already gone count as
    removed too. Returns them with the state ``removed``."""
    done = []
    for r in resources:
        if r.kind == STREAM:
            kinesis = client("kinesis", runtime)
            with (translated(r.kind, r.name, endpoint_for("kinesis", runtime)),
                  contextlib.suppress(kinesis.exceptions.ResourceNotFoundException)):
                kinesis.delete_stream(StreamName=r.name, EnforceConsumerDeletion=True)
                _wait_gone(kinesis, r.name)
        elif r.kind == TABLE:
            dynamodb = client("dynamodb", runtime)
            with (translated(r.kind, r.name, endpoint_for("dynamodb", runtime)),
                  contextlib.suppress(dynamodb.exceptions.ResourceNotFoundException)):
                dynamodb.delete_table(TableName=r.name)
        elif r.kind == NAMESPACE:
            _drop_namespace(_catalog(runtime, warehouse_bucket), r.name, runtime)
        else:
            raise StackError(f"{r.kind} {r.name!r} is not a per-run resource")
        done.append(Resource(r.kind, r.name, "removed"))
    return done


def _wait_gone(kinesis: Any, stream: str) -> None:
    """Wait out a stream's DELETING state (kinesis-mock keeps it a while, as AWS does); the caller
    stops at ``ResourceNotFoundException``."""
    deadline = time.monotonic() + DELETE_TIMEOUT_S
    while time.monotonic() < deadline:
        kinesis.describe_stream_summary(StreamName=stream)
        time.sleep(0.2)
    raise StackError(f"kinesis stream {stream!r} was still there {DELETE_TIMEOUT_S:.0f} s after its deletion")


def _catalog(runtime: RuntimeSettings, warehouse_bucket: str) -> Any:
    with catalog_errors(runtime):
        return load_catalog(runtime, warehouse_bucket)


def _drop_namespace(catalog: Any, namespace: str, runtime: RuntimeSettings) -> None:
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    with catalog_errors(runtime):
        try:
            tables = catalog.list_tables(namespace)
        except NoSuchNamespaceError:
            return
        for ident in tables:
            with contextlib.suppress(NoSuchTableError):
                catalog.purge_table(ident)  # the data files too: a run's tables are nobody else's
        with contextlib.suppress(NoSuchNamespaceError):
            catalog.drop_namespace(namespace)
