"""The local driver JVM's class archive (``pipeline.jvm_archive``): one per Java and classpath, mapped
when it is there, and a session without one starts as before."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from pipeline.config import Config
from pipeline.jvm_archive import archive_path, driver_java_options
from pipeline.spark import local_archive


def _spark_home(tmp_path: Path, jars: list[str]) -> Path:
    home = tmp_path / "spark"
    (home / "jars").mkdir(parents=True)
    for name in jars:
        (home / "jars" / name).touch()
    return home


def test_an_archive_is_named_after_its_java_its_spark_jars_and_its_extra_jars(tmp_path: Path) -> None:
    home = _spark_home(tmp_path, ["spark-core_2.13-4.0.2.jar"])
    java, other_java = tmp_path / "jdk17", tmp_path / "jdk21"
    extra = [tmp_path / "iceberg.jar"]
    root = tmp_path / "archives"
    first = archive_path(java, home, extra, root)
    assert first == archive_path(java, home, extra, root)
    assert first.parent == root and first.suffix == ".jsa"
    assert archive_path(other_java, home, extra, root) != first
    assert archive_path(java, home, [], root) != first
    (home / "jars" / "spark-core_2.13-4.0.3.jar").touch()  # an upgrade in place
    assert archive_path(java, home, extra, root) != first


def test_options_map_an_archive_only_when_it_is_there(tmp_path: Path) -> None:
    archive = tmp_path / "a.jsa"
    assert driver_java_options(archive) is None
    dump = driver_java_options(archive, dump=True)
    assert dump is not None and f"-XX:ArchiveClassesAtExit={archive}" in dump
    archive.write_bytes(b"")
    mapped = driver_java_options(archive)
    assert mapped is not None and f"-XX:SharedArchiveFile={archive}" in mapped
    assert "-Xlog:cds=off" in mapped  # an archive the JVM cannot use is no message for the user


def test_the_local_session_maps_the_archive_when_make_install_made_one(
    spark: SparkSession, config: Config
) -> None:
    archive = local_archive(config)
    assert archive is not None
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    args = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    mapped = [a for a in args if a.startswith("-XX:SharedArchiveFile=")]
    assert mapped == ([f"-XX:SharedArchiveFile={archive}"] if archive.is_file() else [])
