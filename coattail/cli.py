"""The ``coattail`` command line: one sub-command group per module under ``coattail/commands``."""

from __future__ import annotations

import typer

from coattail.commands import register_all

app = typer.Typer(
    name="coattail",
    help="Coat Tail Capital harness: replay market tapes through the production detector pipeline.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
register_all(app)
