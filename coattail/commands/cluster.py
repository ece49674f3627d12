"""``coattail cluster up | down | status``: a Spark standalone cluster on 127.0.0.1 (``infra.cluster``)."""

from __future__ import annotations

from typing import Annotated

import typer

from coattail.commands.stack import cli_errors, console, load_config
from infra import cluster

app = typer.Typer(help="A local Spark standalone cluster (a master and workers on 127.0.0.1).",
                  no_args_is_help=True)  # fmt: skip


@app.command("up")
def up(
    workers: Annotated[int, typer.Option("--workers", min=1, help="Number of workers.")] = 2,
    cores: Annotated[int, typer.Option("--cores", min=1, help="Cores per worker.")] = 1,
    memory: Annotated[str, typer.Option("--memory", help="Memory per worker (1g, 1536m).")] = "1g",
) -> None:
    """Start a master and workers, each its own JVM (reuses a healthy cluster that runs already)."""
    with cli_errors():
        state_dir = load_config().runtime.state_dir
        with console.status("starting the Spark master and workers"):
            report = cluster.up(state_dir, workers=workers, cores=cores, memory=memory)
        console.print(f"cluster: {report.summary()}", highlight=False)
        console.print(f"logs and pid files in {cluster.cluster_dir(state_dir)}", highlight=False)


@app.command("status")
def status() -> None:
    """Whether the master and every worker run and the master counts them alive; exit 1 when not."""
    with cli_errors():
        report = cluster.status(load_config().runtime.state_dir)
        console.print(f"cluster: {report.summary()}", highlight=False)
        if report.state is not None and not report.healthy:
            raise typer.Exit(1)


@app.command("down")
def down() -> None:
    """Stop the workers (and their executors), then the master; leaves no process behind."""
    with cli_errors():
        stopped = cluster.down(load_config().runtime.state_dir)
        console.print("cluster stopped" if stopped else "nothing to stop: no cluster runs")


def register(root: typer.Typer) -> None:
    """Attach ``coattail cluster``."""
    root.add_typer(app, name="cluster")
