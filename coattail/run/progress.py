"""Progress display for the long steps of a run: rich bars on a console, or nothing (tests, library use)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

if TYPE_CHECKING:
    from pipeline.config import Config


class Task(Protocol):
    """One step's handle: advance it, or say what it is doing."""

    def update(
        self, completed: float | None = None, total: float | None = None, note: str | None = None
    ) -> None:
        """Set progress (absolute ``completed`` of ``total``) and a short note."""


class _NullTask:
    def update(
        self, completed: float | None = None, total: float | None = None, note: str | None = None
    ) -> None:
        return None


class Steps:
    """Where a run reports its steps; this base shows nothing (tests, library use)."""

    @contextmanager
    def step(self, name: str, total: float | None = None) -> Iterator[Task]:
        """A step that is shown while it runs."""
        yield _NullTask()

    def log(self, message: str) -> None:
        """A line of information between steps."""


class _RichTask:
    def __init__(self, progress: Progress, task_id: int, name: str) -> None:
        self.progress, self.task_id, self.name = progress, task_id, name

    def update(
        self, completed: float | None = None, total: float | None = None, note: str | None = None
    ) -> None:
        description = self.name if note is None else f"{self.name} [dim]{note}[/dim]"
        self.progress.update(self.task_id, completed=completed, total=total, description=description)  # type: ignore[arg-type]


class RichSteps(Steps):
    """One rich progress bar per step; finished steps stay on screen with their time."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )

    def __enter__(self) -> RichSteps:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    @contextmanager
    def step(self, name: str, total: float | None = None) -> Iterator[Task]:
        """Show a bar (or a spinner when ``total`` is None) while the step runs."""
        task_id = self.progress.add_task(name, total=total)
        task = _RichTask(self.progress, task_id, name)
        yield task
        current = self.progress.tasks[task_id]
        self.progress.update(task_id, total=current.total or 1, completed=current.total or 1)

    def log(self, message: str) -> None:
        """Print above the bars."""
        self.progress.console.print(message)


class RunObserver:
    """What a run tells a live display besides its steps (``coattail run --live``); this base ignores it.
    Called from the run's threads: an implementation guards its own state."""

    def provisioned(self, run_id: str, run_path: Path, config: Config) -> None:
        """The run's stack is up and its own stream, alerts table and namespace exist (``config``)."""

    def replayed(
        self, sent: int, total: int, position_us: int, start_us: int, end_us: int, rate: float
    ) -> None:
        """The replay sent ``sent`` of ``total`` events, up to exchange time ``position_us``."""

    def processed(self, records_in: int, batches: int) -> None:
        """The pipeline took ``records_in`` records in ``batches`` micro-batches so far."""

    def latency(self, figures: dict[str, Any]) -> None:
        """The per-event latency so far, as ``LatencyRecorder.live`` gives it (after each batch)."""

    def stage(self, state: str, message: str | None = None) -> None:
        """The run moved to ``state`` (``replaying``, ``consuming``, ``finished``, ``failed``)."""
