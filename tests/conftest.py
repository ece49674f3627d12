"""Session-wide fixtures: one Spark session and one embedded AWS emulator per test run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

from pipeline.config import Config, ConfigLoader

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from infra.package import Package

REPO = Path(__file__).resolve().parent.parent
REAL_TAPES = REPO.parent / "shared" / "real-tapes"

# How long an example takes depends on the load of the machine (CI runners, a shared box), and the
# properties do real work (Arrow, pandas, files): Hypothesis's default 200 ms deadline turns load into
# failures. Loaded here, before any test module, so per-test settings inherit it.
settings.register_profile("coattail", deadline=None)
settings.load_profile("coattail")


@pytest.fixture(scope="session")
def config() -> Config:
    """The small tier, resolved without the caller's environment."""
    return ConfigLoader().load("small", env={})


@pytest.fixture(scope="session")
def spark(config: Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    """The one Spark session of the test run."""
    from pipeline.aws import local_process_environment
    from pipeline.spark import build_session

    # as a run starts it: the JVM inherits the dummy keys whichever fixture ran first (Iceberg's Glue
    # client reads its credentials from the JVM's environment)
    with local_process_environment():
        session, _ = build_session(
            config, app_name="coattail-tests", local_dir=tmp_path_factory.mktemp("spark")
        )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def aws_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's server as a background process on 127.0.0.1 (``infra.emulator``), for the whole session."""
    from infra import emulator

    # Dummy credentials for the session, restored afterwards (the function-scoped ``monkeypatch`` fixture
    # cannot serve a session fixture).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        state_dir = tmp_path_factory.mktemp("moto")
        yield emulator.start("moto", state_dir).endpoint
        emulator.server_process("moto", state_dir).stop()


@pytest.fixture(scope="session")
def kinesis_mock_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """kinesis-mock (npm ``kinesis-local``) on 127.0.0.1, for tests marked ``kinesis_mock``."""
    from infra import emulator

    state_dir = tmp_path_factory.mktemp("kinesis-mock")
    yield emulator.start("kinesis-mock", state_dir).endpoint
    emulator.server_process("kinesis-mock", state_dir).stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``kinesis_mock`` run only when opted in (they need `make kinesis-mock` and Node)."""
    if os.environ.get("COATTAIL_KINESIS_MOCK") == "1":
        return
    skip = pytest.mark.skip(reason="opt-in: COATTAIL_KINESIS_MOCK=1 after `make kinesis-mock`")
    for item in items:
        if "kinesis_mock" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def job_package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    """The medium tier's job package (``coattail package``), built once per test run (about a minute)."""
    from infra.package import build_package

    return build_package(ConfigLoader().load("medium", env={}), tmp_path_factory.mktemp("package"))


@pytest.fixture(scope="session")
def _cluster_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The state dir of the test run's one Spark standalone cluster; stopped at the end whatever happened."""
    from infra import cluster

    state_dir = tmp_path_factory.mktemp("cluster-state")
    try:
        yield state_dir
    finally:
        cluster.down(state_dir)


@pytest.fixture
def spark_cluster(_cluster_state_dir: Path) -> tuple[Path, str]:
    """The test run's one cluster (``coattail cluster``'s default size), healthy: its state dir and its
    master URL now (a test that replaces the cluster leaves a new master; ``up`` keeps a healthy one)."""
    from infra import cluster

    report = cluster.up(_cluster_state_dir)
    assert report.state is not None
    return _cluster_state_dir, report.state.master_url
