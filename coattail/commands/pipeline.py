"""``coattail pipeline run``: the production detector pipeline against the local stack (or a tape)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from coattail.commands.package import PackageOption
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
from core.errors import ConfigError
from infra.resolve import with_stack
from pipeline.config import Config

if TYPE_CHECKING:
    from pipeline.runner import Progress as RunnerProgress

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
    master: Annotated[
        str | None,
        typer.Option("--master", help="Submit the packaged job to this Spark standalone master "
                     "(spark://HOST:PORT, see `coattail cluster status`) instead of running here."),
    ] = None,
    package: PackageOption = None,
    sets: SetOption = None,
) -> None:
    """Run the streaming pipeline: source -> MOD-xxx detectors -> Iceberg tables and DynamoDB alerts."""
    with cli_errors():
        config = with_stack(
            load_config(tier, sets=sets, profile=profile, allow_real_aws=allow_real_aws), endpoint=endpoint
        )
        ckpt = checkpoint or Path(config.runtime.state_dir) / "checkpoints" / config.tier
        if master is not None:
            _submit(config, master, package, ckpt, tape, until_idle)
            return
        _run_here(config, ckpt, tape, until_idle)


def _submit(
    config: Config, master: str, package: Path | None, checkpoint: Path, tape: Path | None, until_idle: bool
) -> None:
    """The packaged job on ``master`` with spark-submit, followed until idle, stopped or failed."""
    from infra.package import Package
    from infra.submit import ClusterJob

    if not master.startswith("spark://"):
        raise ConfigError(
            f"--master {master!r}: give a Spark standalone master as spark://HOST:PORT (`coattail cluster "
            "status` shows the local one); without --master the pipeline runs in this process"
        )
    if package is None:
        raise ConfigError("--master needs the job package: build it with `coattail package --tier T "
                          "--out DIR` and pass --package DIR")
    job = ClusterJob(
        Package.open(package), config, master, checkpoint=checkpoint, source=tape or "kinesis",
        until_idle=until_idle, work_dir=Path(config.runtime.state_dir) / "cluster" / "jobs" / config.tier,
    )  # fmt: skip
    console.print(
        f"pipeline: tier {config.tier} submitted to {master} from {package}, source "
        f"{tape or config.kinesis.stream}, checkpoint {checkpoint}, log {job.log_file}",
        highlight=False,
    )
    with _progress_bar() as (bar, task):
        job.start()
        try:
            while not job.ended():
                _show(bar, task, job.progress)
                time.sleep(0.25)
        except KeyboardInterrupt:
            console.print("stopping (the checkpoint keeps the position)")
        finally:
            progress = job.stop()
    _done(progress)


def _run_here(config: Config, checkpoint: Path, tape: Path | None, until_idle: bool) -> None:
    """The pipeline in this process's Spark session, until idle or stopped."""
    from pipeline.runner import PipelineRunner

    runner = PipelineRunner(config, checkpoint=checkpoint, source=tape if tape is not None else "kinesis")
    console.print(
        f"pipeline: tier {config.tier}, profile {config.runtime.profile}, modules "
        f"{', '.join(config.modules)}, source {tape or config.kinesis.stream}, checkpoint {checkpoint}",
        highlight=False,
    )
    with _progress_bar() as (bar, task):
        try:
            runner.start()
            while True:
                _show(bar, task, runner.progress)
                if until_idle and runner.poll_idle():
                    break
                runner.check_alive()
                time.sleep(0.25)
        except KeyboardInterrupt:
            console.print("stopping (the checkpoint keeps the position)")
        finally:
            runner.stop()
    _done(runner.progress)


@contextmanager
def _progress_bar() -> Iterator[tuple[Progress, TaskID]]:
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(),
               TextColumn("{task.fields[stats]}"), TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=False) as bar:
        yield bar, bar.add_task("records", total=None, stats="starting Spark")


def _show(bar: Progress, task: TaskID, p: RunnerProgress) -> None:
    bar.update(task, completed=p.records_in, stats=(
        f"{p.records_in} in, {p.valid} valid, {p.quarantined} quarantined, {p.alerts} alerts, "
        f"{p.batches} batches"))  # fmt: skip


def _done(p: RunnerProgress) -> None:
    console.print(
        f"done: {p.records_in} records ({p.valid} valid, {p.quarantined} quarantined), "
        f"{p.alerts} alerts, {p.batches} micro-batches",
        highlight=False,
    )


def register(root: typer.Typer) -> None:
    """Attach ``coattail pipeline``."""
    root.add_typer(app, name="pipeline")
