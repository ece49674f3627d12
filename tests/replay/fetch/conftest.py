"""Fixtures: the local archive server of ``archive_kit``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.replay.fetch.archive_kit import Archive, real_spot_zip, serve_archive


@pytest.fixture(scope="session")
def spot_0809(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 2024-08-09 spot trades zip (made once a session)."""
    return real_spot_zip(tmp_path_factory.mktemp("zips"))


@pytest.fixture
def archive(tmp_path: Path, spot_0809: Path) -> Iterator[Archive]:
    """The archive server with its real files, and settings aimed at it."""
    with serve_archive(tmp_path, spot_0809) as served:
        yield served
