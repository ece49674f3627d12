"""``coattail doctor``: what this machine runs (Python, pyspark, Java, Spark's jars, pyiceberg, the emulators)
and how that differs from the EMR release the tier names (``pipeline.emr``).

Exit status 1 when something required is missing or a jar's checksum is wrong; missing jars and
kinesis-mock are reported but optional (only Spark's Iceberg/Delta writers and opt-in tests need them).
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table

from coattail.commands.stack import TierOption, cli_errors, console, load_config
from core.errors import CoattailError
from infra.emulator import kinesis_local_main
from pipeline.emr import EMR_RELEASES, EmrRelease
from pipeline.jars import DEFAULT_JARS_DIR, JarCheck, JarState, check_jar, load_manifest
from pipeline.java import locate_java

Status = Literal["ok", "warn", "fail"]
# The artifacts whose version is the release's Iceberg and Delta version.
ICEBERG_ARTIFACT = "iceberg-spark-runtime"
DELTA_ARTIFACT = "delta-spark"


@dataclass(frozen=True)
class Check:
    """One line of the report: a component, the version found (None: not found) and where from."""

    component: str
    version: str | None
    status: Status
    detail: str


@dataclass(frozen=True)
class Difference:
    """One component of the EMR release compared with this machine."""

    component: str
    here: str | None
    emr: str
    same: bool


def same_version(here: str | None, emr: str) -> bool:
    """Whether ``here`` is ``emr``'s version, to as many parts as ``emr`` names ("3.11.7" is "3.11")."""
    if here is None:
        return False
    wanted = emr.split(".")
    return here.split(".")[: len(wanted)] == wanted


def _package(name: str, *, required: bool, what: str) -> Check:
    try:
        return Check(name, metadata.version(name), "ok", what)
    except metadata.PackageNotFoundError:
        status: Status = "fail" if required else "warn"
        return Check(name, None, status, f"not installed: run `make install` ({what})")


def jar_check(check: JarCheck) -> Check:
    """The report line of one jar: verified, missing (optional) or a checksum mismatch (a failure)."""
    jar = check.jar
    if check.state is JarState.OK:
        return Check(jar.artifact, jar.version, "ok", f"SHA-256 verified, in {check.path.parent}")
    if check.state is JarState.MISSING:
        return Check(jar.artifact, None, "warn", f"not in {check.path.parent}: run `make jars` (Maven)")
    return Check(
        jar.artifact,
        jar.version,
        "fail",
        f"{check.path} has SHA-256 {check.actual_sha256}, the manifest records {jar.sha256}: "
        "delete the file and run `make jars`",
    )


def _java() -> tuple[Check, str | None]:
    try:
        java = locate_java()
    except CoattailError as e:
        return Check("Java", None, "fail", str(e)), None
    return Check("Java", str(java.major), "ok", f"from {java.origin} ({java.home})"), str(java.major)


def _kinesis_mock() -> Check:
    try:
        main = kinesis_local_main()
    except CoattailError:
        return Check("kinesis-mock", None, "warn", "optional, not installed: `make kinesis-mock` (npm)")
    version = json.loads((main.parent / "package.json").read_text()).get("version")
    return Check("kinesis-mock", version, "ok", f"npm kinesis-local in {main.parent}")


def _jar_version(checks: list[JarCheck], prefix: str) -> str | None:
    found = (c.jar.version for c in checks if c.state is JarState.OK and c.jar.artifact.startswith(prefix))
    return next(found, None)


def examine(release: EmrRelease, jars_dir: Path = DEFAULT_JARS_DIR) -> tuple[list[Check], list[Difference]]:
    """Every check of this machine, and its differences from ``release``."""
    python = platform.python_version()
    pyspark = _package("pyspark", required=True, what="Spark")
    java, java_major = _java()
    jar_checks = [check_jar(jar, jars_dir) for jar in load_manifest()]
    checks = [
        Check("Python", python, "ok", f"{platform.python_implementation()} at {sys.executable}"),
        pyspark,
        java,
        *(jar_check(c) for c in jar_checks),
        _package("pyiceberg", required=True, what="Iceberg tables"),
        _package("moto", required=True, what="the embedded AWS emulator"),
        _kinesis_mock(),
    ]
    here = {
        "Spark": pyspark.version,
        "Iceberg": _jar_version(jar_checks, ICEBERG_ARTIFACT),
        "Delta": _jar_version(jar_checks, DELTA_ARTIFACT),
        "Python": python,
        "Java": java_major,
    }
    emr = {
        "Spark": release.spark,
        "Iceberg": release.iceberg,
        "Delta": release.delta,
        "Python": release.python,
        "Java": release.java,
    }
    differences = [Difference(k, here[k], emr[k], same_version(here[k], emr[k])) for k in emr]
    return checks, differences


_STYLE = {"ok": "green", "warn": "yellow", "fail": "red"}


def _print(release: str, checks: list[Check], differences: list[Difference]) -> None:
    table = Table(title="this machine", title_justify="left")
    for column in ("component", "version", "status", "detail"):
        table.add_column(column, overflow="fold")
    for c in checks:
        table.add_row(c.component, c.version or "-", f"[{_STYLE[c.status]}]{c.status}[/]", c.detail)
    console.print(table)
    emr = Table(title=f"compared with EMR release {release}", title_justify="left")
    for column in ("component", "here", release, "same"):
        emr.add_column(column)
    for d in differences:
        emr.add_row(d.component, d.here or "-", d.emr, "[green]yes[/]" if d.same else "[yellow]no[/]")
    console.print(emr)
    differing = [d.component for d in differences if not d.same]
    console.print(
        f"differs from {release}: {', '.join(differing)}" if differing else f"no difference from {release}",
        highlight=False,
    )


def doctor(
    tier: TierOption = "small",
    jars_dir: Annotated[Path, typer.Option("--jars-dir", help="Where Spark's jars are installed.")] = (
        DEFAULT_JARS_DIR
    ),
    output: Annotated[Literal["table", "json"], typer.Option("--format", help="Output format.")] = "table",
) -> None:
    """Versions of Python, pyspark, Java, Spark's jars (with their checksums), pyiceberg and the emulators,
    and what differs from the EMR release the tier names. Exit 1 when something required is missing."""
    with cli_errors():
        release = load_config(tier).spark.emr.release
    checks, differences = examine(EMR_RELEASES[release], jars_dir)
    if output == "json":
        typer.echo(
            json.dumps(
                {
                    "release": release,
                    "checks": [asdict(c) for c in checks],
                    "differences": [asdict(d) for d in differences],
                },
                indent=2,
            )
        )
    else:
        _print(release, checks, differences)
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Attach ``coattail doctor``."""
    app.command("doctor")(doctor)
