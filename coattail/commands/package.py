"""``coattail package``: the tier's EMR Serverless job, built into a directory (``infra.package``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coattail.commands.stack import SetOption, TierOption, cli_errors, console, load_config

PackageOption = Annotated[
    Path | None,
    typer.Option("--package", help="The job package to submit (`coattail package --out DIR`)."),
]


def package(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the package into.")],
    tier: TierOption = "small",
    base_uri: Annotated[
        str | None,
        typer.Option("--base-uri", help="Where the package is uploaded "
                     "(default s3://<checkpoint bucket>/package/<tier>)."),
    ] = None,
    application_id: Annotated[
        str | None, typer.Option("--application-id", help="`terraform output emr_application_id`.")
    ] = None,
    execution_role_arn: Annotated[
        str | None, typer.Option("--execution-role-arn", help="The job runtime role's ARN.")
    ] = None,
    sets: SetOption = None,
) -> None:
    """Build the job as EMR Serverless runs it: the pipeline's wheel, the packed Python environment
    (env.tar.gz), main.py, config.json, sparkSubmitParameters and the StartJobRun request
    (start-job-run.json, for `aws emr-serverless start-job-run --cli-input-json`). Nothing is sent to AWS."""
    from infra.package import APPLICATION_ID_PLACEHOLDER, ROLE_ARN_PLACEHOLDER, build_package

    with cli_errors():
        config = load_config(tier, sets=sets)
        with console.status("building the package") as spinner:
            built = build_package(
                config, out, base_uri=base_uri,
                application_id=application_id or APPLICATION_ID_PLACEHOLDER,
                execution_role_arn=execution_role_arn or ROLE_ARN_PLACEHOLDER,
                step=spinner.update,
            )  # fmt: skip
        size_mb = built.archive.stat().st_size / 1e6
        console.print(
            f"package for tier {built.tier} in {built.path}: {built.wheel.name}, {built.archive.name} "
            f"({size_mb:.0f} MB), {built.entry_point.name}, {built.config.name}, start-job-run.json",
            highlight=False,
        )
        if application_id is None or execution_role_arn is None:
            console.print(
                "note: start-job-run.json holds ${EMR_APPLICATION_ID} / ${EMR_EXECUTION_ROLE_ARN} "
                "where no --application-id / --execution-role-arn was given (fill in with envsubst)",
                highlight=False,
            )


def register(root: typer.Typer) -> None:
    """Attach ``coattail package``."""
    root.command("package")(package)
