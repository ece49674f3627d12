"""Iceberg tables through pyiceberg: SQL catalog on SQLite (profile ``lite``) or Glue + S3 (``mirror``,
``aws``).

Partitioning: ``trades`` and ``quotes`` by ``event_date`` (the UTC day of ``ts_event``, a ``date``
column the sink adds) and ``symbol``; ``alerts`` by ``event_date``; ``quarantine`` and the metric
tables are small and unpartitioned. Each append carries ``coattail.writer`` and ``coattail.batch-id``
in its snapshot summary, which is how a re-run batch is recognised and skipped (the append and its
summary are one atomic catalog commit).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, ClassVar, Final

import pyarrow as pa
import pyarrow.compute as pc

from core.errors import SinkError
from pipeline.aws import DUMMY_CREDENTIALS, check_endpoint, endpoint_for, is_local_endpoint
from pipeline.config import Config
from pipeline.sinks.base import BATCH_PROPERTY, WRITER_PROPERTY, TableSink

DATE_COLUMN: Final = "event_date"
PARTITIONS: Final[dict[str, tuple[str, ...]]] = {
    "trades": (DATE_COLUMN, "symbol"),
    "quotes": (DATE_COLUMN, "symbol"),
    "alerts": (DATE_COLUMN,),
}
_US_PER_DAY: Final = 86_400_000_000


def load_catalog(config: Config) -> Any:
    """The catalog of ``config.runtime.profile``: SQLite + local files, or Glue + S3."""
    runtime = config.runtime
    try:
        if runtime.profile == "lite":
            from pyiceberg.catalog.sql import SqlCatalog

            root = Path(runtime.state_dir).resolve() / "iceberg"
            (root / "warehouse").mkdir(parents=True, exist_ok=True)
            return SqlCatalog(
                "coattail", uri=f"sqlite:///{root / 'catalog.db'}", warehouse=(root / "warehouse").as_uri()
            )
        from pyiceberg.catalog.glue import GlueCatalog

        props: dict[str, str] = {
            "glue.region": runtime.region,
            "s3.region": runtime.region,
            "warehouse": f"s3://{config.storage.warehouse_bucket}/",
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
        return GlueCatalog("coattail", **props)  # type: ignore[arg-type]
    except ImportError as e:
        raise SinkError(
            f"the Iceberg catalog for profile {runtime.profile!r} needs pyiceberg extras: {e}"
        ) from e


def with_date(table: str, data: pa.Table) -> pa.Table:
    """Add the ``event_date`` partition column to the tables partitioned by day."""
    if table not in PARTITIONS:
        return data
    days = pc.divide(data.column("ts_event"), pa.scalar(_US_PER_DAY, pa.int64()))
    # integer division truncates toward zero; ts before 1970 would need floor, which never occurs here
    dates = pc.cast(pc.cast(days, pa.int32()), pa.date32())
    return data.append_column(pa.field(DATE_COLUMN, pa.date32(), nullable=False), dates)


class IcebergSink(TableSink):
    """One Iceberg table per pipeline table in ``config.storage.namespace``."""

    name: ClassVar[str] = "iceberg"

    def __init__(self, config: Config, catalog: Any | None = None) -> None:
        super().__init__()
        self.config = config
        self.namespace = config.storage.namespace
        self.catalog = catalog if catalog is not None else load_catalog(config)
        self._tables: dict[str, Any] = {}

    def _ident(self, table: str) -> str:
        return f"{self.namespace}.{table}"

    def _create(self, table: str, schema: pa.Schema) -> None:
        from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError
        from pyiceberg.transforms import IdentityTransform

        with contextlib.suppress(NamespaceAlreadyExistsError):
            self.catalog.create_namespace(self.namespace)
        try:
            self._tables[table] = self.catalog.load_table(self._ident(table))
            return
        except NoSuchTableError:
            pass
        full = with_date(table, schema.empty_table()).schema
        try:
            handle = self.catalog.create_table_if_not_exists(self._ident(table), schema=full)
            if table in PARTITIONS and handle.spec().is_unpartitioned():
                with handle.update_spec() as update:
                    for column in PARTITIONS[table]:
                        update.add_field(column, IdentityTransform(), f"{column}_part")
                handle = self.catalog.load_table(self._ident(table))
        except Exception as e:  # pyiceberg and its catalogs raise many unrelated types
            raise SinkError(f"cannot create Iceberg table {self._ident(table)}: {e}") from e
        self._tables[table] = handle

    def _last_committed(self, table: str, writer: str) -> int | None:
        handle = self._tables[table]
        handle.refresh()
        best: int | None = None
        for snapshot in handle.snapshots():
            props = snapshot.summary.additional_properties if snapshot.summary else {}
            if props.get(WRITER_PROPERTY) == writer:
                batch = int(props[BATCH_PROPERTY])
                best = batch if best is None else max(best, batch)
        return best

    def _append(self, table: str, data: pa.Table, properties: dict[str, str]) -> None:
        handle = self._tables[table]
        try:
            handle.append(with_date(table, data), snapshot_properties=properties)
        except Exception as e:
            raise SinkError(
                f"Iceberg append to {self._ident(table)} (batch {properties[BATCH_PROPERTY]}) failed: {e}"
            ) from e

    def read(self, table: str) -> pa.Table:
        """The whole table (for tests, validation and small runs)."""
        handle = self.catalog.load_table(self._ident(table))
        return handle.scan().to_arrow()
