"""Command groups. Each module exposes ``register(app)``; the list below is the only wiring."""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES = (
    "stack",
    "config",
    "replay",
    "sim",
    "tape",
    "jobs",
    "run",
    "validate",
    "diff",
    "golden",
    "pipeline",
    "doctor",
    "connect",
    "api",
    "dashboard",
    "size",
    "faults",
    "reliability",
    "backtest",
    "bench",
    "package",
    "cluster",
)


def register_all(app: typer.Typer) -> None:
    """Attach every command module's commands to the root application."""
    for name in COMMAND_MODULES:
        importlib.import_module(f"coattail.commands.{name}").register(app)
