"""Iceberg tables through pyiceberg: SQL catalog on SQLite (profile ``lite``) or Glue + S3 (``mirror``,
``aws``).

Tables are created from their ``pipeline.tables.TableDef``: its stored schema and an identity partition
field ``<column>_part`` per partition column (``event_date``, the derived day, is added to the rows on
append). ``create_table`` serves the sink and ``coattail up`` alike. Each append carries
``coattail.writer`` and ``coattail.batch-id`` in its snapshot summary, which is how a re-run batch is
recognised and skipped (the append and its summary are one atomic catalog commit).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Final

import pyarrow as pa

from core.errors import SinkError
from pipeline.aws import DUMMY_CREDENTIALS, check_endpoint, endpoint_for, is_local_endpoint
from pipeline.config import Config, RuntimeSettings
from pipeline.sinks.base import BATCH_PROPERTY, WRITER_PROPERTY, MarkedTableSink
from pipeline.tables import TableDef

PART_SUFFIX: Final = "_part"


CATALOG_NAME: Final = "coattail"
"""The catalog's name, which the SQL catalog stores in every row: pyiceberg's SQL catalog and Spark's
JDBC catalog (``pipeline.sinks.spark_catalog``) share one SQLite file only under the same name."""


def lite_catalog_paths(runtime: RuntimeSettings) -> tuple[Path, Path]:
    """The ``lite`` profile's SQLite catalog file and warehouse directory (created if missing)."""
    root = Path(runtime.state_dir).resolve() / "iceberg"
    (root / "warehouse").mkdir(parents=True, exist_ok=True)
    return root / "catalog.db", root / "warehouse"


def load_catalog(runtime: RuntimeSettings, warehouse_bucket: str) -> Any:
    """The catalog of ``runtime.profile``: SQLite + local files, or Glue + S3 (``warehouse_bucket``)."""
    try:
        if runtime.profile == "lite":
            from pyiceberg.catalog.sql import SqlCatalog

            database, warehouse = lite_catalog_paths(runtime)
            return SqlCatalog(CATALOG_NAME, uri=f"sqlite:///{database}", warehouse=warehouse.as_uri())
        from pyiceberg.catalog.glue import GlueCatalog

        props: dict[str, str] = {
            "glue.region": runtime.region,
            "s3.region": runtime.region,
            "warehouse": f"s3://{warehouse_bucket}/",
        }
        key, secret = DUMMY_CREDENTIALS["aws_access_key_id"], DUMMY_CREDENTIALS["aws_secret_access_key"]
        for service in ("glue", "s3"):  # each may have its own endpoint, as in pipeline.aws.client
            check_endpoint(runtime, service)
            endpoint = endpoint_for(service, runtime)
            if endpoint:  # a non-local one is only reachable past the guard
                props[f"{service}.endpoint"] = endpoint
            if is_local_endpoint(endpoint):
                props.update({f"{service}.access-key-id": key, f"{service}.secret-access-key": secret})
                if service == "s3":
                    props["s3.force-virtual-addressing"] = "false"
        return GlueCatalog(CATALOG_NAME, **props)  # type: ignore[arg-type]
    except ImportError as e:
        raise SinkError(
            f"the Iceberg catalog for profile {runtime.profile!r} needs pyiceberg extras: {e}"
        ) from e


def create_table(catalog: Any, namespace: str, table: TableDef) -> tuple[Any, bool]:
    """Load ``namespace.<table>``, or create it (and the namespace) from its definition: the handle and
    whether it was created. Safe against a concurrent creator."""
    from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError
    from pyiceberg.transforms import IdentityTransform

    ident = f"{namespace}.{table.name}"
    # errors reaching the catalog itself pass through: the command line says how to start the stack
    with contextlib.suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace(namespace)
    try:
        return catalog.load_table(ident), False
    except NoSuchTableError:
        pass
    try:
        handle = catalog.create_table_if_not_exists(ident, schema=table.stored_schema)
        if table.partition_by and handle.spec().is_unpartitioned():
            with handle.update_spec() as update:
                for column in table.partition_by:
                    update.add_field(column, IdentityTransform(), f"{column}{PART_SUFFIX}")
            handle = catalog.load_table(ident)
    except Exception as e:  # pyiceberg and its catalogs raise many unrelated types
        raise SinkError(f"cannot create Iceberg table {ident}: {e}") from e
    return handle, True


MARKER_PREFIX: Final = "coattail.last-batch."
"""Table property ``<prefix><writer>``: the last batch ``writer`` committed, set by maintenance before it
expires the snapshots whose summaries recorded it (``SparkIcebergSink.maintain``)."""


def markers(summaries: Iterable[Mapping[str, str]], properties: Mapping[str, str]) -> dict[str, int]:
    """Writer -> last committed batch, from snapshot summaries and maintenance's table properties."""
    last: dict[str, int] = {}
    found = [(s[WRITER_PROPERTY], int(s[BATCH_PROPERTY]))
             for s in summaries if WRITER_PROPERTY in s and BATCH_PROPERTY in s]
    found += [(k[len(MARKER_PREFIX):], int(v)) for k, v in properties.items() if k.startswith(MARKER_PREFIX)]
    for writer, batch in found:
        last[writer] = max(batch, last.get(writer, batch))
    return last


def partition_columns(handle: Any) -> tuple[str, ...]:
    """The source columns of an Iceberg table's partition fields, in spec order."""
    schema = handle.schema()
    return tuple(schema.find_column_name(f.source_id) for f in handle.spec().fields)


class IcebergSink(MarkedTableSink):
    """One Iceberg table per pipeline table in ``config.storage.namespace``."""

    name: ClassVar[str] = "iceberg"
    maintain_every_default: ClassVar[int] = 20

    def __init__(self, config: Config, catalog: Any | None = None) -> None:
        super().__init__(config.storage.maintenance_every_commits)
        self.config = config
        self.namespace = config.storage.namespace
        self.catalog = (
            catalog if catalog is not None else load_catalog(config.runtime, config.storage.warehouse_bucket)
        )
        self._tables: dict[str, Any] = {}

    def _ident(self, table: str) -> str:
        return f"{self.namespace}.{table}"

    def _create(self, table: TableDef) -> None:
        self._tables[table.name], _ = create_table(self.catalog, self.namespace, table)

    def where(self, table: str) -> str:
        """``Iceberg table <namespace>.<table>``."""
        return f"Iceberg table {self._ident(table)}"

    def _markers(self, table: str) -> dict[str, int]:
        """Writer -> last batch in ``table``, re-read from the catalog (snapshots and properties)."""
        handle = self._tables[table]
        handle.refresh()
        summaries = [s.summary.additional_properties if s.summary else {} for s in handle.snapshots()]
        return markers(summaries, handle.properties)

    def _append(self, table: str, data: pa.Table, properties: dict[str, str]) -> None:
        handle, stored = self._tables[table], self.definitions[table].with_partition_columns(data)
        try:
            handle.append(stored, snapshot_properties=properties)
        except Exception as e:
            raise SinkError(
                f"Iceberg append to {self._ident(table)} (batch {properties[BATCH_PROPERTY]}) failed: {e}"
            ) from e

    def maintain(self, table: str) -> dict[str, int]:
        """Keep every writer's last batch as a table property, expire all but the newest
        ``storage.retain_snapshots`` snapshots, keep as many entries of the metadata log, and turn on
        manifest merging, in one catalog commit.

        Every commit rewrites the whole metadata file (every snapshot with its summary, the metadata
        log) and pyiceberg deep-copies that metadata many times per append, and a fast append's
        manifest list names every manifest so far: without this each append costs more than the one
        before (``benchmarks/bench_iceberg_commits.py``). With merging on, an append that finds
        ``commit.manifest.min-count-to-merge`` (100) manifests merges them into one, as Java's Iceberg
        (Spark's writer) does by default. pyiceberg's expiry removes snapshots from the metadata only:
        no file is deleted (the expired snapshots' manifest lists and old metadata files stay on disk).
        """
        from pyiceberg.table import TableProperties
        from pyiceberg.table.update.snapshot import ExpireSnapshots

        handle = self._tables[table]
        last = self._markers(table)  # refreshed: the snapshots the expiry below sees are the latest
        retain = self.config.storage.retain_snapshots
        snapshots = sorted(handle.snapshots(), key=lambda s: s.sequence_number)
        # by time, as pyiceberg expires without deep-copying the metadata per snapshot (``by_id`` does
        # it twice per id); a snapshot as old as the oldest one kept stays too
        cutoff = snapshots[-retain].timestamp_ms if len(snapshots) > retain else 0
        expired = sum(s.timestamp_ms < cutoff for s in snapshots)
        properties = {f"{MARKER_PREFIX}{writer}": str(batch) for writer, batch in last.items()}
        properties[TableProperties.MANIFEST_MERGE_ENABLED] = "true"
        properties[TableProperties.METADATA_PREVIOUS_VERSIONS_MAX] = str(retain)
        try:
            with handle.transaction() as transaction:
                # the markers land in the same atomic commit that drops the snapshots carrying them
                transaction.set_properties(properties)
                if expired:
                    # whole seconds and ms apart: exact, where ``cutoff / 1000`` would go through a float
                    older_than = datetime.fromtimestamp(cutoff // 1_000, tz=UTC) + timedelta(
                        milliseconds=cutoff % 1_000)
                    ExpireSnapshots(transaction).older_than(older_than).commit()
        except Exception as e:
            raise SinkError(f"maintenance of {self.where(table)} failed: {e}") from e
        return {"snapshots_expired": expired}

    def read(self, table: str) -> pa.Table:
        """The whole table (for tests, validation and small runs)."""
        handle = self.catalog.load_table(self._ident(table))
        return handle.scan().to_arrow()
