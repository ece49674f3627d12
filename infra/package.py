"""``coattail package``: what EMR Serverless runs for a tier, built into one directory from the tier file.

The directory holds:

- ``coattail_pipeline-<version>-py3-none-any.whl``: the pipeline (``core`` and ``pipeline``) as a wheel,
  with the runtime dependencies the job imports (``JOB_DEPENDENCIES``, at the project's version ranges);
- ``env.tar.gz``: a virtual environment with that wheel installed at the versions ``requirements.lock``
  pins, packed by venv-pack, as EMR Serverless ships Python dependencies. Spark, pyspark and Java are
  not in it: the release (or a cluster's Spark installation) provides them;
- ``main.py`` (the entry point), ``config.json`` (the tier's resolved config without a runtime: the
  job's arguments say how it reaches AWS), ``spark-submit-parameters.txt`` and ``start-job-run.json``
  (``pipeline.emr_job``), and ``manifest.json`` (what is where, the tier, the release, checksums).

Nothing is sent to AWS. The archive's interpreter is this machine's Python 3.11: for EMR build the
package on the release's OS and CPU architecture (Amazon Linux 2023), since native wheels must match.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.errors import CoattailError
from pipeline import emr_job
from pipeline.config import Config
from pipeline.jars import sha256_of

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "requirements.lock"
WHEEL_NAME = "coattail-pipeline"
# The third-party distributions the job's modules import; pyspark (and py4j) and Java come from Spark's
# installation on EMR and on a cluster, so the environment leaves them out.
JOB_DEPENDENCIES = ("pandas", "pyarrow", "numpy", "pyiceberg", "boto3", "pydantic", "pyyaml")
MANIFEST = "manifest.json"
SUBMIT_PARAMETERS = "spark-submit-parameters.txt"
START_JOB_RUN = "start-job-run.json"
PIP_TIMEOUT_S = 900
# Filled in from `terraform -chdir=infra/terraform output` and the account's job role when not given.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a requirement's distribution name (PEP 508)
APPLICATION_ID_PLACEHOLDER = "${EMR_APPLICATION_ID}"
ROLE_ARN_PLACEHOLDER = "${EMR_EXECUTION_ROLE_ARN}"


class PackageError(CoattailError):
    """The job package could not be built or read."""


@dataclass(frozen=True)
class Package:
    """A built package directory (``manifest.json`` names its parts)."""

    path: Path
    tier: str
    wheel: Path
    archive: Path
    entry_point: Path
    config: Path
    archive_sha256: str

    @classmethod
    def open(cls, path: Path) -> Package:
        """Read a package directory; ``PackageError`` says how to build one when it is not one."""
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except (OSError, ValueError) as e:
            raise PackageError(
                f"{path} is not a job package ({e}); build one with `coattail package --tier T --out {path}`"
            ) from e
        package = cls(
            path=path.resolve(),
            tier=manifest["tier"],
            wheel=path.resolve() / manifest["wheel"],
            archive=path.resolve() / manifest["archive"],
            entry_point=path.resolve() / manifest["entry_point"],
            config=path.resolve() / manifest["config"],
            archive_sha256=manifest["archive_sha256"],
        )
        missing = [p.name for p in (package.wheel, package.archive, package.entry_point, package.config)
                   if not p.is_file()]  # fmt: skip
        if missing:
            raise PackageError(f"the package {path} lacks {', '.join(missing)}; build it again")
        return package


def job_requirements(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """``JOB_DEPENDENCIES`` with the version ranges the project's ``pyproject.toml`` gives them."""
    declared = {
        _NAME.match(text).group(0).lower(): text  # type: ignore[union-attr]
        for text in tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    }
    missing = [name for name in JOB_DEPENDENCIES if name not in declared]
    if missing:
        raise PackageError(f"{pyproject} does not declare the job's dependencies {missing}")
    return [declared[name] for name in JOB_DEPENDENCIES]


def _run(command: list[str], what: str, cwd: Path | None = None) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, cwd=cwd,
                              check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        raise PackageError(f"{what} failed: {e}") from e
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise PackageError(f"{what} failed: {' | '.join(tail)}")


def build_wheel(out: Path, version: str) -> Path:
    """The wheel of ``core`` and ``pipeline`` (built without network, by the installed setuptools)."""
    with tempfile.TemporaryDirectory(prefix="coattail-wheel-") as tmp:
        staging = Path(tmp)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for package in ("core", "pipeline"):
            shutil.copytree(REPO / package, staging / package, ignore=ignore)
        dependencies = ", ".join(json.dumps(r) for r in job_requirements())
        (staging / "pyproject.toml").write_text(
            '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
            f'[project]\nname = "{WHEEL_NAME}"\nversion = "{version}"\nrequires-python = ">=3.11"\n'
            f"dependencies = [{dependencies}]\n\n"
            '[tool.setuptools.packages.find]\ninclude = ["core*", "pipeline*"]\n\n'
            '[tool.setuptools.package-data]\n"*" = ["*.json", "*.yaml"]\n'
        )
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
              "--wheel-dir", str(out), str(staging)], "building the pipeline's wheel")  # fmt: skip
    wheels = sorted(out.glob("coattail_pipeline-*.whl"))
    if not wheels:
        raise PackageError(f"pip reported success but wrote no wheel into {out}")
    return wheels[-1]


def build_environment(wheel: Path, archive: Path) -> None:
    """A fresh virtual environment with ``wheel`` at the lock file's versions, packed into ``archive``."""
    import venv_pack  # type: ignore[import-untyped]

    with tempfile.TemporaryDirectory(prefix="coattail-env-") as tmp:
        env = Path(tmp) / "env"
        base_python = getattr(sys, "_base_executable", sys.executable)
        _run([base_python, "-m", "venv", "--without-pip", str(env)], "creating the job's environment")
        _run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install", "--quiet",
              "--no-warn-script-location", "-c", str(LOCK), str(wheel)],
             "installing the wheel and its dependencies into the job's environment")  # fmt: skip
        try:
            venv_pack.pack(prefix=str(env), output=str(archive), force=True)
        except venv_pack.VenvPackException as e:
            raise PackageError(f"venv-pack could not pack the job's environment: {e}") from e


def build_package(
    config: Config,
    out: Path,
    *,
    base_uri: str | None = None,
    application_id: str = APPLICATION_ID_PLACEHOLDER,
    execution_role_arn: str = ROLE_ARN_PLACEHOLDER,
    step: Callable[[str], None] = lambda _: None,
) -> Package:
    """Build the tier's job package into ``out`` (replacing what a former build left there).

    ``base_uri`` is where the package is uploaded (default ``s3://<checkpoint bucket>/package/<tier>``);
    ``step`` is told what is being done (the command shows it).
    """
    out.mkdir(parents=True, exist_ok=True)
    base = base_uri or f"s3://{config.storage.checkpoint_bucket}/package/{config.tier}"
    for stale in out.glob("coattail_pipeline-*.whl"):
        stale.unlink()
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    step("building the pipeline's wheel")
    wheel = build_wheel(out, version)
    step("installing the job's environment and packing it (venv-pack)")
    archive = out / emr_job.ENV_ARCHIVE
    build_environment(wheel, archive)
    step("writing the entry point, config, sparkSubmitParameters and the StartJobRun request")
    (out / emr_job.ENTRY_POINT).write_text(emr_job.ENTRY_POINT_SOURCE)
    (out / emr_job.CONFIG_FILE).write_text(config.model_dump_json(exclude={"runtime"}, indent=1))
    aws = config.model_copy(update={"runtime": config.runtime.model_copy(update={"profile": "aws"})})
    request = emr_job.start_job_run_request(
        aws, base_uri=base, application_id=application_id, execution_role_arn=execution_role_arn
    )
    problems = emr_job.start_job_run_problems(request)
    if problems:
        raise PackageError(f"the StartJobRun request does not fit EMR Serverless' API: {problems}")
    (out / START_JOB_RUN).write_text(json.dumps(request, indent=2) + "\n")
    submit = request["jobDriver"]["sparkSubmit"]  # type: ignore[index]
    (out / SUBMIT_PARAMETERS).write_text(submit["sparkSubmitParameters"] + "\n")
    archive_sha = sha256_of(archive)
    manifest = {
        "tier": config.tier,
        "release": config.spark.emr.release,
        "base_uri": base,
        "wheel": wheel.name,
        "archive": archive.name,
        "archive_sha256": archive_sha,
        "entry_point": emr_job.ENTRY_POINT,
        "config": emr_job.CONFIG_FILE,
        "spark_submit_parameters": SUBMIT_PARAMETERS,
        "start_job_run": START_JOB_RUN,
        "lock_sha256": sha256_of(LOCK),
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return Package.open(out)
