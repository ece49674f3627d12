"""The ``SPARK_HOME`` of a local session: the pip-installed pyspark, without its zipped Python copy.

Spark puts ``$SPARK_HOME/python/lib/pyspark.zip`` (and py4j's zip) first on the ``PYTHONPATH`` of every
Python process it starts: the workers, the data source planners (one process per ``load()``) and the
streaming source's runner. A pip-installed pyspark ships that zip inside the package, so each of those
processes compiled pyspark from the zip at its start, which caches no bytecode (``zipimport``): about
3 s more per process than importing the installed package on 2 cores (``benchmarks/bench_cold_start.py``),
several times on the way to a query's first micro-batch.

``worker_spark_home`` gives a directory that links every entry of the installation except ``python/``:
Spark starts from it as from the installation, the zip paths it adds name nothing, and its Python
processes import the installed package (the same files, with the bytecode pip compiled). Only local
mode uses it (``pipeline.spark.build_session``); a cluster's daemons get the installation itself
(``infra.cluster``) and EMR runs its own Spark with the packed environment.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Final

DEFAULT_ROOT: Final = Path(__file__).resolve().parent.parent / ".cache" / "spark-home"
"""The checkout's cache (beside Spark's jars, ``pipeline.jars``)."""
ZIPPED: Final = "python"
"""The entry of the installation left out: ``python/lib`` holds the zipped copies."""


def installed_pyspark() -> Path:
    """The directory of the pyspark package this interpreter imports."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def worker_spark_home(root: Path = DEFAULT_ROOT, install: Path | None = None) -> Path | None:
    """A ``SPARK_HOME`` for ``install`` (default: this interpreter's pyspark) without its zipped Python
    copy, made under ``root`` once and reused; None when ``install`` ships no zip (a full Spark
    distribution, whose ``python/`` is its source tree)."""
    install = install or installed_pyspark()
    if not (install / ZIPPED / "lib" / "pyspark.zip").is_file():
        return None
    digest = hashlib.sha256(str(install).encode()).hexdigest()[:12]
    home = root / digest
    if _links(home, install):
        return home
    root.mkdir(parents=True, exist_ok=True)
    building = root / f".{digest}.{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    for entry in install.iterdir():
        if entry.name != ZIPPED:
            (building / entry.name).symlink_to(entry)
    try:
        building.rename(home)
    except OSError:  # another process made it meanwhile (or a stale one is in the way)
        shutil.rmtree(building)
        if not _links(home, install):
            shutil.rmtree(home)
            return worker_spark_home(root, install)
    return home


def _links(home: Path, install: Path) -> bool:
    """``home`` links exactly ``install``'s entries (but ``python/``): a pyspark upgraded in place adds
    or drops entries, and then the home is made again."""
    if not home.is_dir():
        return False
    wanted = {e.name for e in install.iterdir() if e.name != ZIPPED}
    present = {e.name for e in home.iterdir()}
    return wanted == present and all((home / name).resolve() == install / name for name in wanted)
