"""Install Spark's jars (``pipeline/spark-jars.json``) with Maven: ``python -m infra.jars`` (``make jars``).

Jars already present with the recorded SHA-256 are left alone, so a second install downloads nothing.
The missing ones are copied by Maven's dependency plugin (from Maven Central, through ``~/.m2``) into a
staging directory, checked, and only then moved into the cache. Without Maven or Maven Central the command
prints one message naming what is missing and exits 0: only Spark's Iceberg and Delta writers need the
jars, so the rest of the install goes on.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

from rich.console import Console

from core.errors import CoattailError
from pipeline.jars import DEFAULT_JARS_DIR, MANIFEST, Jar, JarState, check_jar, load_manifest, sha256_of

# Pinned so that every machine runs the same copy logic; Maven fetches it once into ~/.m2.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
STAMP_NAME = ".verified"
MAVEN_TIMEOUT_S = 900


class JarsUnavailable(CoattailError):
    """The jars could not be fetched (no Maven, no Maven Central); the install goes on without them."""


class JarChecksumError(CoattailError):
    """A fetched jar's SHA-256 differs from the manifest's."""


def _pom(jars: Sequence[Jar]) -> str:
    """A throwaway project whose dependencies are exactly ``jars``."""
    dependencies = "".join(
        f"<dependency><groupId>{escape(j.group)}</groupId><artifactId>{escape(j.artifact)}</artifactId>"
        f"<version>{escape(j.version)}</version></dependency>"
        for j in jars
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>coattail</groupId><artifactId>spark-jars</artifactId><version>0</version>"
        f"<packaging>pom</packaging><dependencies>{dependencies}</dependencies></project>"
    )


def _missing_message(jars: Sequence[Jar], reason: str) -> str:
    names = ", ".join(j.coordinate for j in jars)
    return (
        f"Spark's jars are not installed ({names}): {reason}. Everything else works; Spark's Iceberg and "
        "Delta writers need them (`coattail doctor` lists them)."
    )


def _maven_failure(output: str) -> str:
    """The line of Maven's output that says why it failed."""
    errors = [line.removeprefix("[ERROR]").strip() for line in output.splitlines() if "[ERROR]" in line]
    return next((e for e in errors if e), output.strip().splitlines()[-1] if output.strip() else "no output")


def install_jars(
    directory: Path = DEFAULT_JARS_DIR,
    manifest: Path = MANIFEST,
    *,
    mvn: str | None = None,
    maven_args: Sequence[str] = (),
    console: Console | None = None,
) -> list[Jar]:
    """Make every manifest jar present in ``directory`` with its SHA-256; return the ones fetched now.

    ``mvn`` defaults to ``mvn`` on PATH; ``maven_args`` go to Maven as they are (a settings file, a
    local repository). Raises ``JarsUnavailable`` or ``JarChecksumError``; writes ``directory/.verified``
    once all jars are in place.
    """
    console = console or Console(stderr=True)
    jars = load_manifest(manifest)
    stamp = directory / STAMP_NAME
    stamp.unlink(missing_ok=True)
    missing = [j for j in jars if check_jar(j, directory).state is not JarState.OK]
    if missing:
        maven = shutil.which(mvn or "mvn")
        if maven is None:
            raise JarsUnavailable(
                _missing_message(missing, "Maven (`mvn`) is not on PATH; install it (apt-get install maven) "
                                 "and run `make jars`")
            )
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=directory, prefix=".staging-") as tmp:
            staging = Path(tmp)
            (staging / "pom.xml").write_text(_pom(missing))
            command = [
                maven, "-B", "-C", "-f", str(staging / "pom.xml"), *maven_args,
                f"{DEPENDENCY_PLUGIN}:copy-dependencies", "-DexcludeTransitive=true",
                f"-DoutputDirectory={staging / 'out'}",
            ]  # fmt: skip
            with console.status(f"fetching {len(missing)} jar(s) with Maven into {directory}"):
                try:
                    done = subprocess.run(
                        command, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S, check=False
                    )
                except subprocess.TimeoutExpired as e:
                    raise JarsUnavailable(
                        _missing_message(missing, f"Maven did not finish within {MAVEN_TIMEOUT_S} s")
                    ) from e
                except OSError as e:
                    raise JarsUnavailable(_missing_message(missing, f"Maven could not be run ({e})")) from e
            if done.returncode != 0:
                raise JarsUnavailable(
                    _missing_message(
                        missing,
                        f"Maven could not fetch them ({_maven_failure(done.stdout + done.stderr)}); "
                        "reach Maven Central (or set a mirror in ~/.m2/settings.xml) and run `make jars`",
                    )
                )
            for jar in missing:
                staged = staging / "out" / jar.file_name
                actual = sha256_of(staged)
                if actual != jar.sha256:
                    raise JarChecksumError(
                        f"{jar.coordinate}: Maven delivered a jar with SHA-256 {actual}, the manifest "
                        f"{manifest} records {jar.sha256}; nothing was installed. If the manifest is "
                        "right, delete the artifact from ~/.m2/repository and run `make jars` again"
                    )
                staged.replace(directory / jar.file_name)
    stamp.write_text("".join(f"{j.sha256}  {j.file_name}\n" for j in jars))
    return missing


def main(argv: list[str] | None = None) -> None:
    """Install the jars; print what happened. Exit 0 unless a jar's checksum is wrong."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_JARS_DIR, help="where the jars go")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    try:
        fetched = install_jars(args.dir, console=console)
    except JarsUnavailable as e:
        console.print(f"[yellow]warning:[/yellow] {e}", highlight=False, soft_wrap=True)
        return
    except JarChecksumError as e:
        console.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        sys.exit(1)
    what = f"fetched {len(fetched)}" if fetched else "nothing to fetch"
    console.print(f"Spark jars: {what}; all {len(load_manifest())} verified in {args.dir}", highlight=False)


if __name__ == "__main__":
    main()
