"""What each EMR Serverless release runs, and the worker sizes EMR Serverless accepts: the one place for both.

``config/tiers/*.yaml`` name a release (``spark.emr.release``); the config checks its sizes against
``worker_size_problem`` and ``coattail doctor`` compares this machine with the release's versions.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EmrRelease:
    """The versions one EMR release ships (from its release notes)."""

    label: str
    spark: str
    iceberg: str
    delta: str
    python: str
    java: str


EMR_RELEASES: dict[str, EmrRelease] = {
    release.label: release
    for release in (
        EmrRelease(
            label="emr-spark-8.0.0", spark="4.0.2", iceberg="1.10.1", delta="4.0.0", python="3.11", java="17"
        ),
    )
}


@dataclass(frozen=True)
class WorkerSizes:
    """The memory EMR Serverless allows a worker of one vCPU count: a range and a step, in GB."""

    min_memory_gb: int
    max_memory_gb: int
    memory_step_gb: int


# EMR Serverless' supported worker configurations (its user guide, "Supported worker configurations").
WORKER_SIZES: dict[int, WorkerSizes] = {
    1: WorkerSizes(2, 8, 1),
    2: WorkerSizes(4, 16, 1),
    4: WorkerSizes(8, 30, 1),
    8: WorkerSizes(16, 60, 4),
    16: WorkerSizes(32, 120, 8),
}
MIN_DISK_GB = 20
MAX_DISK_GB = 200


def worker_size_problem(vcpu: int, memory_gb: int, disk_gb: int) -> str | None:
    """What is wrong with a worker size for EMR Serverless, or None when it is allowed."""
    sizes = WORKER_SIZES.get(vcpu)
    if sizes is None:
        return f"vcpu {vcpu} is not a worker size; EMR Serverless allows {', '.join(map(str, WORKER_SIZES))}"
    allowed = range(sizes.min_memory_gb, sizes.max_memory_gb + 1, sizes.memory_step_gb)
    if memory_gb not in allowed:
        return (
            f"memory_gb {memory_gb} does not fit a {vcpu}-vCPU worker; allowed: {sizes.min_memory_gb} to "
            f"{sizes.max_memory_gb} GB in steps of {sizes.memory_step_gb}"
        )
    if not MIN_DISK_GB <= disk_gb <= MAX_DISK_GB:
        return f"disk_gb {disk_gb} is outside EMR Serverless' {MIN_DISK_GB} to {MAX_DISK_GB} GB per worker"
    return None
