"""``coattail dashboard``: the built dashboard and the alert API together on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from coattail.commands.api import with_run_resources
from coattail.commands.stack import EndpointOption, SetOption, TierOption, cli_errors, load_config

console = Console()

DEFAULT_PORT = 8090
PortOption = Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0: a free one).")]


def dashboard(
    port: PortOption = DEFAULT_PORT,
    run: Annotated[
        str | None,
        typer.Option(
            "--run", help="Show this run (run directory, run id or `latest`); without it, the tier's table."
        ),
    ] = None,
    runs_root: Annotated[Path, typer.Option("--runs", help="Where run directories are.")] = Path("runs"),
    tier: TierOption = "small",
    endpoint: EndpointOption = None,
    sets: SetOption = None,
) -> None:
    """Serve the dashboard (dashboard/dist) and the alert API under /api until Ctrl-C."""
    from coattail.api_server import serve_until_interrupted
    from coattail.dashboard.server import DIST, Backend, make_dashboard_server, url
    from core.errors import CoattailError
    from infra.resolve import with_stack

    with cli_errors():
        config = load_config(tier, sets=sets)
        run_path = None
        if run is not None:
            config, run_path = with_run_resources(config, run, runs_root)
        config = with_stack(config, endpoint=endpoint)
        backend = Backend(config=config, run_path=run_path)
        api = backend.api()
        assert api is not None  # a Backend with a config always has one
        if api.store.table_state()["status"] != "ACTIVE":
            if run_path is None:
                raise CoattailError(
                    f"the alerts table {config.dynamodb.alerts_table} does not exist; "
                    "`coattail up --tier TIER` provisions it"
                )
            from coattail.dashboard.restore import restore_alerts

            # the run removed its table when it ended (the default): put back what it captured
            n = restore_alerts(config, run_path)
            console.print(
                f"restored {n} alerts of the run into {config.dynamodb.alerts_table} "
                "(`coattail gc` removes it)",
                highlight=False,
            )
        if not (DIST / "index.html").is_file():
            console.print(f"[yellow]the dashboard is not built ({DIST}); `make install` builds it[/yellow]")
        server = make_dashboard_server(backend, port)
        console.print(
            f"dashboard on {url(server)} (alerts table {config.dynamodb.alerts_table}); Ctrl-C stops it",
            highlight=False,
        )
        serve_until_interrupted(server)


def register(app: typer.Typer) -> None:
    """Attach ``coattail dashboard``."""
    app.command("dashboard")(dashboard)
