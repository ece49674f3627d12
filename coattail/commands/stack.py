"""``coattail up | down | status``: the local AWS stack (emulators on 127.0.0.1 plus provisioning).

Also the home of what every command module shares: ``cli_errors`` (one-line errors, no traceback),
``load_config`` (tier + ``--set`` + runtime options, validated) and the common option types.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
from rich.console import Console
from rich.table import Table

from core.errors import CoattailError, ConfigError
from infra import stack
from infra.provision import Resource
from pipeline.config import Config, ConfigLoader, ProfileName, RuntimeSettings, TierName

console = Console()
err_console = Console(stderr=True)

TierOption = Annotated[TierName, typer.Option("--tier", help="Config tier.")]
ProfileOption = Annotated[
    ProfileName | None,
    typer.Option(
        "--profile",
        help="Where AWS services come from: lite/mirror use the local emulator, aws is real AWS.",
    ),
]
AllowRealAwsOption = Annotated[
    bool,
    typer.Option("--allow-real-aws", help="Required together with --profile aws to reach real AWS."),
]
EndpointOption = Annotated[
    str | None,
    typer.Option(
        "--endpoint",
        help="Use an already running emulator at this URL (e.g. LocalStack) instead of starting moto.",
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config key: --set kinesis.shards=4 (repeatable)."),
]


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn the project's errors, and the AWS, Spark and OS errors that reach the command line
    untranslated, into a one-line message on stderr and exit status 1 (no traceback)."""
    try:
        yield
    except Exception as e:
        message = error_message(e)
        if message is None:
            raise
        err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from e


def error_message(error: Exception) -> str | None:
    """The one-line message (with what to do) for an error ``cli_errors`` handles; None for a bug."""
    if isinstance(error, CoattailError):
        return str(error)
    if isinstance(error, EndpointConnectionError):
        return (
            f"cannot reach the AWS endpoint {error.kwargs.get('endpoint_url', '')}: start the local stack "
            "with `coattail up` (check it with `coattail status`) or fix --endpoint / COATTAIL_AWS_ENDPOINT"
        )
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        return (
            f"AWS {error.operation_name} failed: {info.get('Code', '?')}: {info.get('Message', '')}; "
            "check that the stack is up and provisioned (`coattail status`, `coattail up`)"
        )
    if isinstance(error, BotoCoreError):
        return f"AWS: {_first_line(error)}; check the endpoint and credentials (`coattail status`)"
    if _is_spark_error(error):
        return (
            f"Spark failed: {_first_line(error)}; check that a supported JDK is installed (JAVA_HOME) "
            "and Spark's log above"
        )
    if isinstance(error, OSError):
        if error.filename:
            reason = error.strerror or _first_line(error)
            return f"{error.filename}: {reason}; check the path and its permissions"
        if isinstance(error, ConnectionError):
            return f"{_first_line(error)}: is the local stack up? (`coattail status`, `coattail up`)"
        return f"{_first_line(error)}; check free disk space, permissions and open-file limits"
    return None


def _is_spark_error(error: Exception) -> bool:
    # Looked up only when loaded: if pyspark/py4j were never imported, the error cannot come from them,
    # and importing pyspark here would slow every command down.
    py4j = sys.modules.get("py4j.protocol")
    pyspark = sys.modules.get("pyspark.errors")
    return (py4j is not None and isinstance(error, py4j.Py4JError)) or (
        pyspark is not None and isinstance(error, pyspark.PySparkException)
    )


def _first_line(error: BaseException) -> str:
    # Py4J's text starts with "An error occurred while calling o42.start." and names the Java error next
    lines = [
        line.strip().lstrip(": ")
        for line in str(error).splitlines()
        if line.strip() and not line.startswith("An error occurred while calling")
    ]
    return lines[0] if lines else type(error).__name__


def parse_sets(pairs: list[str] | None) -> dict[str, Any]:
    """``["a.b=1", ...]`` as overrides for ``ConfigLoader.load``: each value as text, which the loader
    reads against the type of the field it sets."""
    overrides: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}: expected key=value, e.g. --set kinesis.shards=4")
        overrides[key.strip()] = value
    return overrides


def load_config(
    tier: TierName = "small",
    *,
    sets: list[str] | None = None,
    profile: ProfileName | None = None,
    allow_real_aws: bool = False,
) -> Config:
    """The tier's config with the command line's runtime options applied on top (validated); an
    ``--endpoint`` is applied where the stack is found (``infra.resolve``)."""
    config = ConfigLoader().load(tier, overrides=parse_sets(sets))
    updates: dict[str, Any] = {"allow_real_aws": allow_real_aws}
    if profile is not None:
        updates["profile"] = profile
    try:
        runtime = RuntimeSettings.model_validate({**config.runtime.model_dump(), **updates})
    except ValueError as e:
        raise ConfigError(f"command-line runtime options: {e}") from e
    return config.model_copy(update={"runtime": runtime})


def resources_table(resources: list[Resource], title: str) -> Table:
    """A rich table of provisioned resources."""
    table = Table(title=title, title_justify="left")
    for column in ("resource", "name", "state", "detail"):
        table.add_column(column)
    colours = {"created": "green", "updated": "yellow", "exists": "cyan", "missing": "red",
               "leftover": "yellow", "removed": "green"}
    for r in resources:
        table.add_row(r.kind, r.name, f"[{colours[r.state]}]{r.state}[/]", r.detail)
    return table


def _print_status(report: stack.StackStatus) -> None:
    table = Table(title="emulators", title_justify="left")
    for column in ("process", "state", "pid"):
        table.add_column(column)
    table.add_column("endpoint", no_wrap=True)
    table.add_column("log", overflow="fold")
    for p in report.processes:
        colour = "green" if p.state == "running" else "red"
        table.add_row(
            p.kind,
            f"[{colour}]{p.state}[/]",
            str(p.pid or ""),
            p.endpoint or "real AWS",
            str(p.log or ""),
        )
    if report.processes:
        console.print(table)
    if report.resources:
        console.print(resources_table(report.resources, "resources"))
    console.print(f"stack: {report.summary()}", highlight=False)


def up(
    tier: TierOption = "small",
    profile: ProfileOption = None,
    allow_real_aws: AllowRealAwsOption = False,
    endpoint: EndpointOption = None,
    kinesis: Annotated[
        stack.KinesisEngine,
        typer.Option(
            "--kinesis",
            help="Kinesis engine: moto (default) or kinesis-mock (needs `make kinesis-mock`).",
        ),
    ] = "moto",
    port: Annotated[int | None, typer.Option("--port", help="moto's port (default: a free one).")] = None,
    sets: SetOption = None,
    warm_driver: Annotated[
        bool,
        typer.Option(
            "--warm-driver",
            help="Also keep a warm local Spark driver for the tier, which `coattail run` attaches to.",
        ),
    ] = False,
) -> None:
    """Start the local emulator on 127.0.0.1 and provision the tier's resources (reuses a running one)."""
    with cli_errors():
        config = load_config(tier, sets=sets, profile=profile, allow_real_aws=allow_real_aws)
        with console.status("bringing the stack up") as spinner:
            handle = stack.up(config, endpoint=endpoint, kinesis=kinesis, port=port, step=spinner.update)
        console.print(
            resources_table(handle.resources, f"tier {config.tier}, profile {config.runtime.profile}")
        )
        where = handle.runtime.aws_endpoint or "real AWS"
        extra = "".join(f", {s} at {url}" for s, url in handle.runtime.service_endpoints.items())
        console.print(f"stack up at {where}{extra} (state in {config.runtime.state_dir})", highlight=False)
        for note in handle.notes:
            console.print(f"[yellow]note:[/yellow] {note}", highlight=False, soft_wrap=True)
        if warm_driver:
            from coattail.run import warm_driver as warm
            from pipeline.aws import local_process_environment

            with console.status("starting the warm Spark driver"), local_process_environment():
                driver = warm.start(config)
            console.print(f"warm Spark driver up (JVM pid {driver.jvm_pid})", highlight=False)


def status(
    profile: ProfileOption = None,
    allow_real_aws: AllowRealAwsOption = False,
) -> None:
    """Show the emulator processes and every provisioned resource; exit 1 when the stack is broken."""
    with cli_errors():
        config = load_config(profile=profile, allow_real_aws=allow_real_aws)
        report = stack.status(config.runtime)
        _print_status(report)
        from coattail.run.warm_driver import describe

        if (driver := describe(config.runtime.state_dir)) is not None:
            console.print(driver, highlight=False)
        if report.state is not None and not report.healthy:
            raise typer.Exit(1)


def down() -> None:
    """Stop the emulators and forget the stack; leaves no process behind."""
    with cli_errors():
        from coattail.run.warm_driver import stop

        config = load_config()
        warm = stop(config.runtime.state_dir)
        done = ([warm] if warm else []) + stack.down(config.runtime.state_dir)
        for line in done or ["nothing to stop: the stack is down"]:
            console.print(line, highlight=False)


def gc(
    profile: ProfileOption = None,
    allow_real_aws: AllowRealAwsOption = False,
) -> None:
    """Remove what runs left on the running stack (their own streams, alert tables and Iceberg
    namespaces: a killed run, or one given --keep-resources); the tier's own resources stay. A run
    still going loses its resources too: run it when none is."""
    from infra.resolve import find_stack
    from infra.run_resources import leftovers, remove

    with cli_errors():
        config = load_config(profile=profile, allow_real_aws=allow_real_aws)
        state = stack.read_state(config.runtime.state_dir)
        if state is None:
            raise CoattailError(
                "no stack recorded: `coattail up` first (`coattail status` shows what is there)"
            )
        runtime = find_stack(config.runtime).runtime
        found = leftovers(state.spec, runtime)
        if not found:
            console.print("nothing to remove: no run left resources on the stack")
            return
        removed = remove(found, runtime, state.spec.iceberg.warehouse_bucket)
        console.print(resources_table(removed, "removed"))


def register(app: typer.Typer) -> None:
    """Attach the stack commands."""
    app.command("up")(up)
    app.command("status")(status)
    app.command("down")(down)
    app.command("gc")(gc)
