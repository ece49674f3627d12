"""``coattail tape fetch``, ``tape cache ls|rm`` and ``run --day`` against the local archive server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coattail.cli import app
from coattail.commands.tape import day_tapes
from core.tape import Tape
from tests.replay.fetch.archive_kit import Archive, real_spot_zip, serve_archive

runner = CliRunner()


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Archive]:
    """The archive server, and the environment aiming every command at it (and at a test cache)."""
    with serve_archive(tmp_path, real_spot_zip(tmp_path)) as served:
        monkeypatch.setenv("COATTAIL_FETCH__BINANCE_URL", served.server.url)
        monkeypatch.setenv("COATTAIL_FETCH__TARDIS_URL", served.server.url)
        monkeypatch.setenv("COATTAIL_FETCH__CACHE_DIR", str(served.settings.cache_dir))
        monkeypatch.setenv("COATTAIL_FETCH__BACKOFF_SECONDS", "0")
        yield served


def test_fetch_writes_a_tape_and_a_second_fetch_is_served_by_the_cache(
    archive: Archive, tmp_path: Path
) -> None:
    args = ["tape", "fetch", "binance", "--symbols", "btcusdt", "--from", "2024-08-08", "--to", "2024-08-09"]
    first = runner.invoke(app, [*args, "--out", str(tmp_path / "tape")])
    assert first.exit_code == 0, first.output
    assert "2 downloaded" in first.output and "wrote" in first.output
    Tape.open(tmp_path / "tape").verify()
    requests = len(archive.server.log)
    again = runner.invoke(
        app,
        [
            "tape",
            "fetch",
            "binance",
            "--symbols",
            "ETHUSDT",
            "--from",
            "2024-08-08",
            "--out",
            str(tmp_path / "tape"),
        ],
    )
    assert again.exit_code == 1 and "already holds a tape; pass --overwrite" in again.output
    assert len(archive.server.log) == requests, "an existing tape is refused before any download"
    second = runner.invoke(app, [*args, "--no-import"])
    assert second.exit_code == 0, second.output
    assert "0 downloaded (0.0 MiB), 2 from the cache" in second.output
    assert len(archive.server.log) == requests


def test_cache_ls_and_rm(archive: Archive) -> None:
    fetched = runner.invoke(
        app,
        [
            "tape",
            "fetch",
            "tardis",
            "--symbols",
            "BTCUSDT",
            "--from",
            "2020-02-01",
            "--market",
            "usdm",
            "--no-import",
        ],
    )
    assert fetched.exit_code == 0, fetched.output
    listed = runner.invoke(app, ["tape", "cache", "ls"])
    assert listed.exit_code == 0, listed.output
    assert "binance-futures" in listed.output and "2 file(s)" in listed.output
    refused = runner.invoke(app, ["tape", "cache", "rm"])
    assert refused.exit_code != 0 and "--all" in refused.output
    removed = runner.invoke(app, ["tape", "cache", "rm", "--kind", "quotes"])
    assert removed.exit_code == 0 and "removed 1 file(s)" in removed.output
    assert [p.name for p in archive.settings.cache_dir.rglob("*.gz")] == [
        "binance-futures_trades_2020-02-01_BTCUSDT.csv.gz"
    ]


def test_errors_are_one_line_messages(archive: Archive, tmp_path: Path) -> None:
    missing = runner.invoke(
        app,
        [
            "tape",
            "fetch",
            "binance",
            "--symbols",
            "NOPE",
            "--from",
            "2024-08-08",
            "--out",
            str(tmp_path / "t"),
        ],
    )
    assert missing.exit_code == 1
    assert "error: binance has no spot trades file for NOPE on any requested day" in missing.output
    assert "Traceback" not in missing.output
    bad_day = runner.invoke(
        app, ["tape", "fetch", "binance", "--symbols", "BTCUSDT", "--from", "2024-8-8", "--no-import"]
    )
    assert bad_day.exit_code == 1 and "--from '2024-8-8' is not a date like 2024-01-31" in bad_day.output


def test_run_day_specs_fetch_once_then_reuse_the_tape(archive: Archive, tmp_path: Path) -> None:
    tapes = day_tapes(["binance:BTCUSDT:2024-08-08..2024-08-09"], tmp_path / "tapes")
    assert tapes == [tmp_path / "tapes" / "binance-spot-BTCUSDT-2024-08-08_2024-08-09"]
    Tape.open(tapes[0]).verify()
    requests = len(archive.server.log)
    assert day_tapes(["binance:BTCUSDT:2024-08-08..2024-08-09"], tmp_path / "tapes") == tapes
    assert len(archive.server.log) == requests


def test_run_refuses_a_bad_day_spec_before_starting_anything(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--day", "binance:BTCUSDT", "--runs", str(tmp_path)])
    assert result.exit_code == 1
    assert "day spec 'binance:BTCUSDT': expected SOURCE" in result.output
    nothing = runner.invoke(app, ["run", "--runs", str(tmp_path)])
    assert nothing.exit_code != 0 and "--day" in nothing.output
