"""Fetching Tardis datasets: the free first day of a month, the API key for the rest, gzip verification."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from core.tape import Tape
from replay.fetch import ChecksumMismatch, FetchError, FetchRequest, FetchSettings, fetch, fetch_tape
from tests.conftest import REAL_TAPES
from tests.replay.fetch.archive_kit import Archive

FREE = date(2020, 2, 1)
PAID = date(2020, 2, 22)
KEY = "sekret-key"


def request(day: date) -> FetchRequest:
    return FetchRequest("tardis", ("BTCUSDT",), (day,), market="binance-futures")


def csv_rows(kind: str) -> int:
    return sum(1 for _ in open(REAL_TAPES / "tardis" / f"tardis_{kind}.csv")) - 1


def with_key(archive: Archive, key: str) -> FetchSettings:
    fields = archive.settings.model_dump(exclude={"tardis_api_key"})
    return FetchSettings.load(env={"TARDIS_API_KEY": key}, **fields)


def test_the_free_first_day_imports_trades_and_quotes(archive: Archive, tmp_path: Path) -> None:
    fetched, _ = fetch_tape(request(FREE), archive.settings, tmp_path / "tape")
    assert sorted(p.name for p in fetched.paths) == [
        "binance-futures_quotes_2020-02-01_BTCUSDT.csv.gz",
        "binance-futures_trades_2020-02-01_BTCUSDT.csv.gz",
    ]
    tape = Tape.open(tmp_path / "tape")
    assert tape.manifest.rows == {"trade": csv_rows("trades"), "quote": csv_rows("quotes")}
    assert all(r.range is None and r.status == 200 for r in archive.server.log)


def test_other_days_without_a_key_are_refused_before_any_request(archive: Archive) -> None:
    with pytest.raises(FetchError, match="first day of a month without an API key; 2020-02-22 need one"):
        fetch(request(PAID), archive.settings)
    assert archive.server.log == []


def test_the_key_from_the_environment_is_sent_and_never_shown(archive: Archive) -> None:
    settings = with_key(archive, KEY)
    assert KEY not in repr(settings) and KEY not in str(settings.model_dump())
    result = fetch(request(PAID), settings)
    assert len(result.downloaded) == 2
    wrong = with_key(archive, "wrong-key").model_copy(update={"cache_dir": archive.settings.cache_dir / "2"})
    with pytest.raises(FetchError, match=r"HTTP 401.*set TARDIS_API_KEY") as e:
        fetch(FetchRequest("tardis", ("BTCUSDT",), (PAID,), kinds=("trades",), market="usdm"), wrong)
    assert "wrong-key" not in str(e.value)


def test_a_truncated_gzip_is_deleted_and_named(archive: Archive) -> None:
    published = archive.root / archive.paths["tardis-trades-2020-02-01"].lstrip("/")
    published.write_bytes(published.read_bytes()[:-100])
    with pytest.raises(
        ChecksumMismatch, match=r"binance-futures_trades_2020-02-01_BTCUSDT\.csv\.gz .* not an intact"
    ):
        fetch(
            FetchRequest("tardis", ("BTCUSDT",), (FREE,), kinds=("trades",), market="usdm"), archive.settings
        )
    assert [p for p in archive.settings.cache_dir.rglob("*trades*") if p.is_file()] == []


def test_a_bad_exchange_id_is_refused(archive: Archive) -> None:
    with pytest.raises(FetchError, match="not a Tardis exchange id"):
        fetch(FetchRequest("tardis", ("BTCUSDT",), (FREE,), market="Binance Futures"), archive.settings)
