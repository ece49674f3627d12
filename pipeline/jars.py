"""Spark's jars for EMR parity: the committed manifest (``spark-jars.json``), where they are installed and
whether each one is there with the recorded SHA-256.

``make jars`` (``infra.jars``) fetches them at install time; nothing resolves at run time. The local
session (``pipeline.spark``) puts the installed ones on its classpath; EMR brings its own.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

MANIFEST = Path(__file__).with_name("spark-jars.json")
# The checkout's cache, shared by every virtual environment of it (the Makefile's JARS_DIR).
DEFAULT_JARS_DIR = Path(__file__).resolve().parent.parent / ".cache" / "jars"


@dataclass(frozen=True)
class Jar:
    """One Maven artifact and the SHA-256 its jar must have."""

    group: str
    artifact: str
    version: str
    sha256: str

    @property
    def coordinate(self) -> str:
        """``group:artifact:version``, as Maven names it."""
        return f"{self.group}:{self.artifact}:{self.version}"

    @property
    def file_name(self) -> str:
        """The jar's file name, as Maven's dependency plugin copies it."""
        return f"{self.artifact}-{self.version}.jar"


class JarState(Enum):
    OK = "ok"
    MISSING = "missing"
    MISMATCH = "checksum mismatch"


@dataclass(frozen=True)
class JarCheck:
    """What was found for one jar of the manifest."""

    jar: Jar
    path: Path
    state: JarState
    actual_sha256: str | None = None


def load_manifest(path: Path = MANIFEST) -> tuple[Jar, ...]:
    """The jars the manifest lists."""
    jars = []
    for entry in json.loads(path.read_text())["jars"]:
        group, artifact, version = entry["coordinate"].split(":")
        jars.append(Jar(group=group, artifact=artifact, version=version, sha256=entry["sha256"]))
    return tuple(jars)


def sha256_of(path: Path) -> str:
    """The file's SHA-256, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_jar(jar: Jar, directory: Path = DEFAULT_JARS_DIR) -> JarCheck:
    """Whether ``jar`` is installed in ``directory`` with the manifest's SHA-256."""
    path = directory / jar.file_name
    if not path.is_file():
        return JarCheck(jar, path, JarState.MISSING)
    actual = sha256_of(path)
    state = JarState.OK if actual == jar.sha256 else JarState.MISMATCH
    return JarCheck(jar, path, state, actual)


def installed_jars(directory: Path = DEFAULT_JARS_DIR, manifest: Path = MANIFEST) -> list[Path]:
    """The manifest's jars present in ``directory``, for the classpath.

    Presence only: checksums are verified when the jars are installed (each is moved into place only
    after its check) and by ``coattail doctor``; hashing 130 MB at every session start would cost more.
    """
    return [p for jar in load_manifest(manifest) if (p := directory / jar.file_name).is_file()]
