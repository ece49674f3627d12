"""``coattail pipeline run``: the production detector pipeline against the local stack (or a tape)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from coattail.commands.stack import (
    AllowRealAwsOption,
    EndpointOption,
    ProfileOption,
    SetOption,
    TierOption,
    cli_errors,
    console,
    load_config,
)
from infra.resolve import with_stack

app = typer.Typer(
    help="The detector pipeline (Kinesis -> Spark -> Iceberg + DynamoDB).", no_args_is_help=True
)


@app.command("run")
def run(
    tier: TierOption = "small",
    profile: ProfileOption = None,
    allow_real_aws: AllowRealAwsOption = False,
    endpoint: EndpointOption = None,
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Stop once every record in the stream was processed.")
    ] = False,
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="Checkpoint directory (default: <state dir>/checkpoints/<tier>)."),
    ] = None,
    tape: Annotated[
        Path | None, typer.Option("--tape", help="Read this tape directory instead of Kinesis.")
    ] = None,
    sets: SetOption = None,
) -> None:
    """Run the streaming pipeline: source -> MOD-xxx detectors -> Iceberg tables and DynamoDB alerts."""
    from pipeline.runner import PipelineRunner

    with cli_errors():
        config = with_stack(
            load_config(tier, sets=sets, profile=profile, allow_real_aws=allow_real_aws), endpoint=endpoint
        )
        ckpt = checkpoint or Path(config.runtime.state_dir) / "checkpoints" / config.tier
        runner = PipelineRunner(config, checkpoint=ckpt, source=tape if tape is not None else "kinesis")
        console.print(
            f"pipeline: tier {config.tier}, profile {config.runtime.profile}, modules "
            f"{', '.join(config.modules)}, source {tape or config.kinesis.stream}, checkpoint {ckpt}",
            highlight=False,
        )
        columns = (TextColumn("[progress.description]{task.description}"), BarColumn(),
                   TextColumn("{task.fields[stats]}"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("records", total=None, stats="starting Spark")
            try:
                runner.start()
                while True:
                    p = runner.progress
                    bar.update(task, completed=p.records_in, stats=(
                        f"{p.records_in} in, {p.valid} valid, {p.quarantined} quarantined, "
                        f"{p.alerts} alerts, "
                        f"batch {p.last_batch_id}"))
                    if until_idle and runner.poll_idle():
                        break
                    runner.check_alive()
                    time.sleep(0.25)
            except KeyboardInterrupt:
                console.print("stopping (the checkpoint keeps the position)")
            finally:
                runner.stop()
        p = runner.progress
        console.print(
            f"done: {p.records_in} records ({p.valid} valid, {p.quarantined} quarantined), "
            f"{p.alerts} alerts, "
            f"{p.batches} micro-batches",
            highlight=False,
        )


def register(root: typer.Typer) -> None:
    """Attach ``coattail pipeline``."""
    root.add_typer(app, name="pipeline")
