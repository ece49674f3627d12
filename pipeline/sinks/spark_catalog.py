"""Spark's Iceberg catalog for a profile, with EMR's catalog properties: only endpoints and credentials
differ from production.

``lite``: Iceberg's JDBC catalog on the SQLite file pyiceberg's SQL catalog uses
(``pipeline.sinks.iceberg.lite_catalog_paths``), under the same catalog name, so either side reads what
the other wrote. ``jdbc.schema-version=V1`` pins the layout both agree on (V1 adds a nullable
``iceberg_type`` column that pyiceberg leaves empty, which the JDBC catalog reads as a table), a busy
timeout makes a commit wait for the other side's write lock instead of failing, and the JDBC catalog's
table cache is off (it would hide pyiceberg's commits). SQLite serialises
writers: run one writer per table (the pipeline's table sink, or a maintenance step between commits).

``mirror`` / ``aws``: the Glue catalog with ``S3FileIO``, as EMR's "Iceberg with Glue" configuration
(``type=glue``, ``io-impl=org.apache.iceberg.aws.s3.S3FileIO``, ``warehouse=s3://bucket/``); on the
emulator the Glue and S3 endpoints, path-style access and the dummy credentials are added.

Catalog properties are runtime options of a session, but Spark keeps a catalog once loaded: each sink
configures a session of its own (``SparkSession.newSession``: same context, own catalogs), so that two
state directories in one process never share a stale catalog.

Delta's tables on S3 are read and written through Hadoop's file systems: on EMR ``s3://`` is EMRFS and
needs nothing from us; elsewhere (``mirror``) ``delta_storage_properties`` serves the same ``s3://`` paths
with Hadoop's S3A connector (``hadoop-aws`` among the installed jars) at the profile's S3 endpoint.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import TYPE_CHECKING, Final

from pipeline.aws import DUMMY_CREDENTIALS, check_endpoint, endpoint_for, is_local_endpoint
from pipeline.config import RuntimeSettings
from pipeline.sinks.iceberg import CATALOG_NAME, lite_catalog_paths, load_catalog

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SESSION_EXTENSIONS: Final = (
    "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
    "io.delta.sql.DeltaSparkSessionExtension",
)
"""Spark SQL extensions EMR enables for Iceberg and Delta (partition-field DDL, maintenance procedures,
OPTIMIZE); static options, set when the session is built (``pipeline.spark``)."""
BUSY_TIMEOUT_MS: Final = 30_000
"""How long a catalog commit waits for SQLite's write lock held by the other side."""


def iceberg_catalog_properties(runtime: RuntimeSettings, warehouse_bucket: str) -> dict[str, str]:
    """``spark.sql.catalog.<CATALOG_NAME>.*`` options (without the prefix) for ``runtime.profile``."""
    props = {"": "org.apache.iceberg.spark.SparkCatalog"}
    if runtime.profile == "lite":
        database, warehouse = lite_catalog_paths(runtime)
        props.update({
            "type": "jdbc",
            "uri": f"jdbc:sqlite:{database}",
            "warehouse": warehouse.as_uri(),
            "jdbc.schema-version": "V1",
            # passed to the driver as a connection property: sqlite-jdbc's busy_timeout pragma
            "jdbc.busy_timeout": str(BUSY_TIMEOUT_MS),
            # the catalog's tables are laid out by ``prepare_lite_catalog``: the JDBC catalog's own
            # check of an existing layout leaves a read transaction open, whose lock then blocks every
            # pyiceberg commit to the file
            "jdbc.init-catalog-tables": "false",
            # pyiceberg commits to the same catalog: a cached table would hide them
            "cache-enabled": "false",
        })
        return props
    props.update({
        "type": "glue",
        "io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        "warehouse": f"s3://{warehouse_bucket}/",
        "client.region": runtime.region,
    })
    for service in ("glue", "s3"):
        endpoint = endpoint_for(service, runtime)
        if endpoint:
            props[f"{service}.endpoint"] = endpoint
    if is_local_endpoint(endpoint_for("s3", runtime)) or is_local_endpoint(endpoint_for("glue", runtime)):
        props.update({
            "s3.path-style-access": "true",
            "s3.access-key-id": DUMMY_CREDENTIALS["aws_access_key_id"],
            "s3.secret-access-key": DUMMY_CREDENTIALS["aws_secret_access_key"],
        })
    return props


S3A: Final = "org.apache.hadoop.fs.s3a.S3AFileSystem"


def delta_storage_properties(runtime: RuntimeSettings) -> dict[str, str]:
    """Hadoop options (``fs.*``) under which Delta reaches its ``s3://`` tables for ``runtime``: none on
    EMR (real AWS, no endpoint: EMRFS serves ``s3://``); with an S3 endpoint, S3A at that endpoint,
    path-style, with the dummy credentials when the endpoint is this machine's emulator."""
    endpoint = endpoint_for("s3", runtime)
    if runtime.profile == "lite" or not endpoint:
        return {}
    props = {
        "fs.s3.impl": S3A,
        "fs.s3a.endpoint": endpoint,
        "fs.s3a.endpoint.region": runtime.region,
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": str(endpoint.startswith("https:")).lower(),
    }
    if is_local_endpoint(endpoint):
        props.update({
            "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
            "fs.s3a.access.key": DUMMY_CREDENTIALS["aws_access_key_id"],
            "fs.s3a.secret.key": DUMMY_CREDENTIALS["aws_secret_access_key"],
        })
    return props


def prepare_lite_catalog(runtime: RuntimeSettings) -> None:
    """Lay out the ``lite`` SQLite catalog for both sides: pyiceberg's tables (created by its catalog when
    missing), plus the nullable ``iceberg_type`` column of the JDBC catalog's V1 layout (Iceberg's own
    migration statement)."""
    database, _ = lite_catalog_paths(runtime)
    load_catalog(runtime, "")
    with contextlib.closing(sqlite3.connect(database, timeout=BUSY_TIMEOUT_MS / 1_000)) as db, db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(iceberg_tables)")}
        if "iceberg_type" not in columns:
            db.execute("ALTER TABLE iceberg_tables ADD COLUMN iceberg_type VARCHAR(5)")


def catalog_session(spark: SparkSession, runtime: RuntimeSettings, warehouse_bucket: str) -> SparkSession:
    """A session of ``spark``'s context whose catalog ``CATALOG_NAME`` is the profile's Iceberg catalog."""
    if runtime.profile == "lite":
        prepare_lite_catalog(runtime)
    else:
        for service in ("glue", "s3"):  # the properties are plain data; talking to AWS is what is guarded
            check_endpoint(runtime, service)
    session = spark.newSession()
    set_catalog(session, runtime, warehouse_bucket)
    return session


def set_catalog(session: SparkSession, runtime: RuntimeSettings, warehouse_bucket: str) -> None:
    """Make ``CATALOG_NAME`` the profile's Iceberg catalog in ``session`` (before its first use there):
    a DataFrame is written through its own session, such as a streaming batch's."""
    for key, value in iceberg_catalog_properties(runtime, warehouse_bucket).items():
        session.conf.set(f"spark.sql.catalog.{CATALOG_NAME}" + (f".{key}" if key else ""), value)
