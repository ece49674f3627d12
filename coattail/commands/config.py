"""``coattail config show``: the resolved configuration of a tier (files < environment < --set)."""

from __future__ import annotations

import json
from typing import Annotated, Literal

import typer
import yaml

from coattail.commands.stack import SetOption, TierOption, cli_errors, load_config

config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)


@config_app.command("show")
def show(
    tier: TierOption = "small",
    sets: SetOption = None,
    output: Annotated[Literal["yaml", "json"], typer.Option("--format", help="Output format.")] = "yaml",
) -> None:
    """Print the tier's resolved config: features.yaml < tier file < COATTAIL__* environment < --set."""
    with cli_errors():
        data = load_config(tier, sets=sets).model_dump(mode="json")
    if output == "json":
        typer.echo(json.dumps(data, indent=2, sort_keys=False))
    else:
        typer.echo(yaml.safe_dump(data, sort_keys=False), nl=False)


def register(app: typer.Typer) -> None:
    """Attach ``coattail config ...``."""
    app.add_typer(config_app, name="config")
