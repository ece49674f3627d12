"""Fixtures of the infra tests."""

from __future__ import annotations

import builtins
import pathlib
from typing import Any

import pytest

from infra import processes


@pytest.fixture
def no_procfs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our code cannot read ``/proc``, as on macOS, while psutil (which reads it on Linux itself) still
    works: every open of a ``/proc`` path through ``pathlib`` or ``infra.processes``' ``open`` fails."""
    path_open = pathlib.Path.open

    def refusing_path_open(self: pathlib.Path, *args: Any, **kwargs: Any) -> Any:
        if str(self).startswith("/proc"):
            raise FileNotFoundError(f"no procfs here: {self}")
        return path_open(self, *args, **kwargs)

    def refusing_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file).startswith("/proc"):
            raise FileNotFoundError(f"no procfs here: {file}")
        return builtins.open(file, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", refusing_path_open)
    monkeypatch.setattr(processes, "open", refusing_open, raising=False)
