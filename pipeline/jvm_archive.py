"""The local driver JVM's class-data-sharing archive: the classes a session loads at its start, mapped
from one file instead of read from the jars, parsed and verified again by every run.

A local session's JVM loads some twenty thousand classes before its first query (Spark SQL, Iceberg,
Delta, Hadoop); on 2 cores that is about half of ``build_session`` (``benchmarks/bench_cold_start.py
--session``). Java 17 can dump the classes a run loaded into a dynamic archive when it exits
(``-XX:ArchiveClassesAtExit``) and map them at the next start (``-XX:SharedArchiveFile``).

``make install`` builds the archive (``python -m pipeline.jvm_archive``): a throwaway session runs the
work every run starts with, stops, and its JVM writes the archive as it exits, to a temporary name
that is renamed once complete. ``build_session`` adds ``driver_java_options`` to a local session;
without an archive (not built yet, another Java, other jars) it adds nothing and the session starts as
before. The archive is named after the Java runtime and the classpath it was made with; the JVM checks
the rest itself and starts without it, silently, when the jars changed since. Local mode only: a
cluster's driver and EMR start their own JVMs.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

DEFAULT_ROOT: Final = Path(__file__).resolve().parent.parent / ".cache" / "jvm-archive"
"""The checkout's cache (beside Spark's jars, ``pipeline.jars``)."""
QUIET: Final = "-Xlog:cds=off -Xlog:cds+dynamic=off"
"""The JVM reports an archive it cannot use (or classes it leaves out of one) as warnings on the
console; either way the session runs, so a user has nothing to act on."""


def archive_path(java_home: Path, spark_home: Path, jars: Sequence[Path], root: Path = DEFAULT_ROOT) -> Path:
    """Where the archive for this Java runtime, Spark installation and extra jars lives."""
    shipped = spark_home / "jars"
    spark_jars = sorted(p.name for p in shipped.iterdir()) if shipped.is_dir() else []
    key = "\n".join([str(java_home.resolve()), str(spark_home), *spark_jars, *(str(j) for j in jars)])
    return root / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.jsa"


def driver_java_options(archive: Path, *, dump: bool = False) -> str | None:
    """The driver JVM's options to map ``archive`` (None when it is not there), or with ``dump`` to
    write it when the JVM exits (to ``archive`` itself: the caller renames it into place)."""
    if dump:
        return f"-XX:ArchiveClassesAtExit={archive} {QUIET}"
    if not archive.is_file():
        return None
    return f"-XX:SharedArchiveFile={archive} {QUIET}"


def build(tier: str = "small") -> Path | None:
    """Make the archive for this checkout's Java and jars, if it is missing: a throwaway local session
    runs a first job of each kind a run starts with, then its JVM writes the archive as it exits.
    Returns where it is, or None when there is no local Java to make one for."""

    from core.errors import CoattailError
    from pipeline.config import ConfigLoader
    from pipeline.source import register_sources
    from pipeline.spark import build_session, local_archive, stop_session, warm_python_workers

    config = ConfigLoader().load(tier)
    try:
        target = local_archive(config)
    except CoattailError as e:
        print(f"no JVM class archive: {e}", file=sys.stderr)
        return None
    if target is None or target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    partial.unlink(missing_ok=True)
    spark, _ = build_session(config, app_name="coattail-jvm-archive", archive_dump=partial)
    register_sources(spark)
    warm_python_workers(spark)
    spark.range(1_000).selectExpr("id % 7 AS k", "id").groupBy("k").count().toArrow()
    stop_session(spark)  # the JVM writes the archive as it exits
    if not partial.is_file():
        print("the JVM wrote no class archive; sessions start without one", file=sys.stderr)
        return None
    partial.rename(target)
    return target


def main() -> None:
    """``python -m pipeline.jvm_archive``: build the archive if it is missing (``make install``)."""
    made = build()
    if made is not None:
        print(f"JVM class archive: {made}")


if __name__ == "__main__":
    main()
