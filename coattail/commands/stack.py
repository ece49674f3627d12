"""``coattail up | down | status``: the local AWS stack (filled in by the foundation work)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the stack commands."""
