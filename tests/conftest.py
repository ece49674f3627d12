"""Session-wide fixtures: one Spark session and one embedded AWS emulator per test run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pipeline.config import Config, ConfigLoader

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

REPO = Path(__file__).resolve().parent.parent
REAL_TAPES = REPO.parent / "shared" / "real-tapes"


@pytest.fixture(scope="session")
def config() -> Config:
    """The small tier, resolved without the caller's environment."""
    return ConfigLoader().load("small", env={})


@pytest.fixture(scope="session")
def spark(config: Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    """The one Spark session of the test run."""
    from pipeline.spark import build_session

    session, _ = build_session(config, app_name="coattail-tests", local_dir=tmp_path_factory.mktemp("spark"))
    yield session
    session.stop()


@pytest.fixture(scope="session")
def aws_endpoint() -> Iterator[str]:
    """An embedded moto server on 127.0.0.1 with dummy credentials, for the whole session."""
    from moto.server import ThreadedMotoServer

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ[key] = value
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
