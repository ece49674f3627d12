"""A local session's SPARK_HOME: the installed pyspark without its zipped copy (``pipeline.spark_home``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from pipeline.spark_home import installed_pyspark, worker_spark_home

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def _install(root: Path, entries: Iterable[str] = ("bin", "jars", "sbin")) -> Path:
    """A directory shaped like a pip-installed pyspark."""
    install = root / "pyspark"
    (install / "python" / "lib").mkdir(parents=True)
    (install / "python" / "lib" / "pyspark.zip").write_bytes(b"PK")
    for name in entries:
        (install / name).mkdir()
    (install / "__init__.py").write_text("")
    return install


def test_the_home_links_every_entry_but_the_zipped_python(tmp_path: Path) -> None:
    install = _install(tmp_path)
    home = worker_spark_home(tmp_path / "cache", install)
    assert home is not None
    assert sorted(p.name for p in home.iterdir()) == ["__init__.py", "bin", "jars", "sbin"]
    assert all((home / name).resolve() == install / name for name in ("bin", "jars", "sbin"))
    assert not (home / "python" / "lib" / "pyspark.zip").exists()


def test_the_home_is_reused_and_made_again_when_the_installation_changed(tmp_path: Path) -> None:
    install = _install(tmp_path)
    first = worker_spark_home(tmp_path / "cache", install)
    assert first is not None
    marker = first / "bin"
    stamp = marker.lstat().st_mtime_ns
    assert worker_spark_home(tmp_path / "cache", install) == first
    assert marker.lstat().st_mtime_ns == stamp  # not made again
    (install / "licenses").mkdir()  # pyspark upgraded in place
    again = worker_spark_home(tmp_path / "cache", install)
    assert again == first and (again / "licenses").resolve() == install / "licenses"
    assert not list((tmp_path / "cache").glob(".*"))  # no half-made directory left


def test_a_distribution_without_a_zipped_copy_is_used_as_it_is(tmp_path: Path) -> None:
    install = _install(tmp_path)
    (install / "python" / "lib" / "pyspark.zip").unlink()
    assert worker_spark_home(tmp_path / "cache", install) is None


def _where(batches: Iterable[pa.RecordBatch]) -> Iterable[pa.RecordBatch]:
    import pyspark

    for _ in batches:
        yield pa.RecordBatch.from_pylist([{"path": pyspark.__file__}])


def test_the_session_s_python_workers_import_the_installed_pyspark(spark: SparkSession) -> None:
    rows = spark.range(1).mapInArrow(_where, "path string").collect()
    assert Path(rows[0]["path"]).resolve() == installed_pyspark() / "__init__.py"
