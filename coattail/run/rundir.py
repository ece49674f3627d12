"""Run directories: ``runs/<run-id>/`` holds everything one run produced and everything needed to judge it.

Layout::

    run.json            the request (tapes, tier, profile, speed, faults, seed, overrides) and timings
    config.json         the resolved configuration
    tapes.json          the manifests of the replayed tapes
    versions.json       software versions and the git revision
    labels.json         the tapes' labels and the labels of the faults the replay injected
    pipeline/           what the pipeline wrote (alerts, dq_metrics, spread_metrics as Parquet)
    reference/          what the reference implementation computed from the same input
    metrics/            throughput.parquet, batches.parquet
    prices.parquet      a thinned price series per symbol (for the report)
    validation.json     labels, reference agreement, golden comparison
    summary.json        the figures of the run
    report.html         the self-contained report
"""

from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from core.errors import CoattailError

DEFAULT_ROOT: Final = Path("runs")
PACKAGES: Final = ("coattail", "pyspark", "pyiceberg", "polars", "pyarrow", "moto", "boto3", "plotly")


@dataclass(frozen=True)
class RunDir:
    """One run's directory."""

    path: Path

    @property
    def run_id(self) -> str:
        """The directory name."""
        return self.path.name

    @classmethod
    def create(cls, root: Path, label: str = "run") -> RunDir:
        """A new, empty run directory named ``<UTC time>-<label>`` (suffixed when taken)."""
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        root.mkdir(parents=True, exist_ok=True)
        base = f"{stamp}-{label}"
        for n in range(100):
            path = root / (base if n == 0 else f"{base}-{n}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return cls(path)
        raise CoattailError(f"cannot create a run directory under {root}: too many runs named {base}")

    @classmethod
    def open(cls, ref: str | Path, root: Path = DEFAULT_ROOT) -> RunDir:
        """A run by path, by id under ``root``, or ``latest``."""
        candidates = [Path(ref), root / str(ref)]
        if str(ref) == "latest":
            runs = list_runs(root)
            if not runs:
                raise CoattailError(
                    f"no runs under {root}; make one with `coattail run TAPE` or `coattail demo`"
                )
            candidates = [runs[-1].path]
        for path in candidates:
            if (path / "run.json").is_file():
                return cls(path)
        raise CoattailError(f"{ref} is not a run directory (no run.json); `coattail runs` lists the runs")

    def write_json(self, name: str, data: Any) -> Path:
        """Write ``data`` as indented JSON with sorted keys."""
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        return target

    def read_json(self, name: str) -> Any:
        """Read a JSON file of the run; a missing one names the run."""
        target = self.path / name
        if not target.is_file():
            raise CoattailError(f"run {self.run_id} has no {name}: the run did not finish")
        return json.loads(target.read_text())

    def has(self, name: str) -> bool:
        """Whether the run has this file."""
        return (self.path / name).exists()


def list_runs(root: Path = DEFAULT_ROOT) -> list[RunDir]:
    """Every run under ``root``, oldest first."""
    if not root.is_dir():
        return []
    return sorted((RunDir(p) for p in root.iterdir() if (p / "run.json").is_file()), key=lambda r: r.run_id)


def software_versions() -> dict[str, Any]:
    """Python, the main packages and the git revision of the working tree (``+dirty`` when modified)."""
    versions: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["git"] = git_revision(Path(__file__).resolve().parent)
    return versions


def git_revision(where: Path) -> str | None:
    """``<sha>`` or ``<sha>+dirty``; None outside a git checkout."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}+dirty" if dirty else sha
