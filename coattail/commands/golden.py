"""``coattail golden update``: (re)write a golden alert file; nothing else ever writes one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from coattail.commands.stack import cli_errors, parse_sets
from core.errors import ConfigError
from pipeline.config import TierName

console = Console()


def update(
    out: Annotated[Path, typer.Argument(help="Golden file to write, e.g. fixtures/golden/whale-day.json.")],
    run: Annotated[
        str | None, typer.Option("--run", help="Take the alerts of this run (the pipeline's).")
    ] = None,
    tape: Annotated[
        Path | None,
        typer.Option("--tape", help="Or compute them with the reference implementation from a tape."),
    ] = None,
    faults: Annotated[
        Path | None, typer.Option("--faults", help="Fault spec the replay applies (--tape).")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Fault seed (--tape).")] = None,
    sets: Annotated[
        list[str] | None, typer.Option("--set", help="Config override key=value (--tape).")
    ] = None,
    tier: Annotated[TierName, typer.Option("--tier", help="Tier for --tape.")] = "small",
    runs_root: Annotated[Path, typer.Option("--runs", help="Where run directories are.")] = Path("runs"),
) -> None:
    """Write a golden file from a run's alerts (``--run``) or the reference over a tape (``--tape``)."""
    from coattail.validate.golden import write_golden

    with cli_errors():
        if (run is None) == (tape is None):
            raise ConfigError("give exactly one of --run RUN or --tape TAPE")
        if run is not None:
            from coattail.run.outputs import RunOutputs
            from coattail.run.rundir import RunDir

            alerts = RunOutputs.load(RunDir.open(run, runs_root).path / "pipeline").alert_rows()
            source = f"run {run}"
        else:
            assert tape is not None
            from coattail.run.judge import reference_outputs
            from pipeline.config import ConfigLoader
            from replay.faults import load_fault_spec

            config = ConfigLoader().load(tier, overrides=parse_sets(sets))
            spec = load_fault_spec(faults) if faults is not None else None
            alerts = reference_outputs([tape], config, spec, seed)[0].alert_rows()
            source = f"the reference over {tape}"
        count = write_golden(out, alerts)
    console.print(f"wrote {out}: {count} alerts from {source}")


def register(app: typer.Typer) -> None:
    """Attach ``golden update``."""
    group = typer.Typer(help="Golden alert files of the fixture tapes.", no_args_is_help=True)
    group.command("update")(update)
    app.add_typer(group, name="golden")
