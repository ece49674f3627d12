"""The code a benchmark runs: the working tree, or a git revision in its own checkout and venv.

A revision is checked out once per commit as a git worktree under the state directory
(``<state>/bench/checkouts/<commit>``) and gets its own venv from its own lock file (its ``make
install``; Spark's jars are linked from this checkout's cache first, so nothing is downloaded twice).
Both sides then run the same way: ``<checkout>/.venv/bin/coattail run ...`` in their checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.errors import CoattailError

REPO = Path(__file__).resolve().parents[2]
"""The working tree this code runs from (the candidate)."""
JARS = Path(".cache") / "jars"


@dataclass(frozen=True)
class Checkout:
    """Where one side's code lives and what it is."""

    name: str
    """``candidate`` or ``baseline``."""
    path: Path
    commit: str
    dirty: bool
    """The working tree has uncommitted changes (its commit is only where they start)."""

    @property
    def coattail(self) -> Path:
        """The checkout's own ``coattail`` command."""
        return self.path / ".venv" / "bin" / "coattail"


def git(*args: str, cwd: Path = REPO) -> str:
    """``git args`` in ``cwd``; ``CoattailError`` with git's message when it fails."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    except FileNotFoundError as e:
        raise CoattailError("git is not installed: --baseline needs it") from e
    except subprocess.CalledProcessError as e:
        raise CoattailError(f"git {' '.join(args)} failed: {e.stderr.strip()}") from e
    return done.stdout.strip()


def working_tree() -> Checkout:
    """The candidate: this working tree as it is."""
    return Checkout("candidate", REPO, git("rev-parse", "HEAD"), bool(git("status", "--porcelain")))


def revision(rev: str, state_dir: Path, note: Callable[[str], None]) -> Checkout:
    """The baseline: ``rev`` checked out (once per commit) with its own venv; ``note`` hears progress."""
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    path = (state_dir / "bench" / "checkouts" / commit).resolve()
    if not (path / ".git").exists():
        note(f"git worktree for {rev} ({commit[:10]})")
        path.parent.mkdir(parents=True, exist_ok=True)
        git("worktree", "add", "--detach", str(path), commit)
    jars = path / JARS
    jars.mkdir(parents=True, exist_ok=True)
    for jar in (REPO / JARS).glob("*.jar"):
        if not (jars / jar.name).exists():
            try:
                os.link(jar, jars / jar.name)
            except OSError:  # another file system: copy
                shutil.copy2(jar, jars / jar.name)
    if not (path / ".venv" / ".installed").exists():
        note(f"its venv from its lock file (make install in {path})")
    try:
        # make is a no-op once the venv is installed and the jars verified
        subprocess.run(["make", "install"], cwd=path, capture_output=True, text=True, check=True)
    except subprocess.CalledProcessError as e:
        tail = "\n".join((e.stdout + e.stderr).strip().splitlines()[-15:])
        raise CoattailError(f"make install failed in the checkout of {rev} ({path}):\n{tail}") from e
    return Checkout("baseline", path, commit, dirty=False)
