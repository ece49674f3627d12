"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def stack_env(aws_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Runs go to the session's moto server; local state (Iceberg catalog) to a temporary directory."""
    state = tmp_path_factory.mktemp("state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COATTAIL_AWS_ENDPOINT", aws_endpoint)
        mp.setenv("COATTAIL_STATE_DIR", str(state))
        yield tmp_path_factory.mktemp("runs")
