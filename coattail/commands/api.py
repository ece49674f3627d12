"""``coattail api serve``: the alert API on 127.0.0.1, against the running stack's DynamoDB and Kinesis."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from coattail.commands.stack import EndpointOption, SetOption, TierOption, cli_errors, load_config

if TYPE_CHECKING:
    from pipeline.config import Config

console = Console()


def serve(
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0: a free one).")] = 8080,
    tier: TierOption = "small",
    run: Annotated[
        str | None,
        typer.Option("--run", help="Serve this run's alerts (run directory, run id or `latest`)."),
    ] = None,
    runs_root: Annotated[Path, typer.Option("--runs", help="Where run directories are.")] = Path("runs"),
    endpoint: EndpointOption = None,
    sets: SetOption = None,
) -> None:
    """Serve the alert API (the Lambda handlers of pipeline.api) over HTTP until Ctrl-C."""
    from coattail.api_server import LOOPBACK, make_server, serve_until_interrupted
    from infra.resolve import with_stack
    from pipeline.api.app import AlertApi
    from pipeline.api.store import AlertStore, ApiSettings

    with cli_errors():
        config = load_config(tier, sets=sets)
        if run is not None:
            config, _ = with_run_resources(config, run, runs_root)
        config = with_stack(config, endpoint=endpoint)
        settings = ApiSettings(
            alerts_table=config.dynamodb.alerts_table, stream=config.kinesis.stream, runtime=config.runtime
        )
        server = make_server(AlertApi(AlertStore.from_settings(settings)), port)
        bound = server.server_address[1]
        host = LOOPBACK
        console.print(
            f"alert API on http://{host}:{bound} (table {settings.alerts_table}, stream {settings.stream}); "
            f"try http://{host}:{bound}/health — Ctrl-C stops it",
            highlight=False,
        )
        serve_until_interrupted(server)


def with_run_resources(config: Config, run: str, runs_root: Path) -> tuple[Config, Path]:
    """``config`` naming the run's own stream and alerts table (a run writes its own:
    ``coattail.run.orchestrate.resolve_config``), and the run's directory."""
    from coattail.run.rundir import RunDir
    from pipeline.config import Config

    opened = RunDir.open(run, runs_root)
    recorded = Config.model_validate(opened.read_json("config.json"))
    return config.model_copy(update={"kinesis": recorded.kinesis, "dynamodb": recorded.dynamodb}), opened.path


def register(app: typer.Typer) -> None:
    """Attach ``coattail api serve``."""
    group = typer.Typer(help="The alert API (Lambda handlers) served locally.", no_args_is_help=True)
    group.command("serve")(serve)
    app.add_typer(group, name="api")
