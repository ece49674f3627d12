"""Fetching Binance archive days from the local archive server: verify, import, cache hits, bad files."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import pytest

from core.tape import Tape
from replay.fetch import ChecksumMismatch, FetchError, FetchRequest, fetch, fetch_tape, plan
from replay.fetch.testkit import publish_binance
from tests.replay.fetch.archive_kit import Archive

DAYS = (date(2024, 8, 8), date(2024, 8, 9))


def spot(*days: date, symbols: tuple[str, ...] = ("BTCUSDT",)) -> FetchRequest:
    return FetchRequest("binance", symbols, days or DAYS)


def zip_rows(archive: Archive, key: str) -> int:
    import zipfile

    with zipfile.ZipFile(archive.root / archive.paths[key].lstrip("/")) as zf:
        return sum(1 for line in zf.read(zf.namelist()[0]).splitlines() if line.strip())


def test_fetch_verifies_imports_and_a_second_fetch_downloads_nothing(
    archive: Archive, tmp_path: Path
) -> None:
    fetched, imported = fetch_tape(spot(), archive.settings, tmp_path / "tape")
    assert [r.period for r in fetched.downloaded] == ["2024-08-08", "2024-08-09"]
    for key, path in zip(("spot-0808", "spot-0809"), fetched.paths, strict=True):
        published = archive.root / archive.paths[key].lstrip("/")
        assert path.read_bytes() == published.read_bytes()
        assert path.parent.parent.parent.parent.name == "binance"  # cache/binance/spot/BTCUSDT/trades
    assert fetched.bytes_downloaded == sum(p.stat().st_size for p in fetched.paths)
    assert len(archive.server.requests(".CHECKSUM")) == 2
    tape = Tape.open(tmp_path / "tape")
    tape.verify()
    assert tape.manifest.rows["trade"] == zip_rows(archive, "spot-0808") + zip_rows(archive, "spot-0809")
    assert imported.manifest.rows == tape.manifest.rows

    before = len(archive.server.log)
    again = fetch(spot(), archive.settings)
    assert len(archive.server.log) == before, "a cache hit must not reach the server"
    assert again.downloaded == [] and len(again.cached) == 2 and again.paths == fetched.paths


def test_usd_m_futures_files_import_as_futures_trades(archive: Archive, tmp_path: Path) -> None:
    request = FetchRequest("binance", ("BTCUSDT",), (date(2020, 2, 22),), market="usdm")
    fetch_tape(request, archive.settings, tmp_path / "tape")
    assert archive.server.requests("BTCUSDT-trades-2020-02-22.zip")[0].path.startswith("/data/futures/um/")
    batches = list(Tape.open(tmp_path / "tape").iter_batches("trade", columns=["exchange"]))
    assert {e for b in batches for e in b.column("exchange").to_pylist()} == {"binance-futures"}


def test_checksum_mismatch_deletes_the_download_and_names_the_file(archive: Archive) -> None:
    checksum = archive.root / (archive.paths["spot-0809"].lstrip("/") + ".CHECKSUM")
    checksum.write_text(f"{hashlib.sha256(b'other').hexdigest()}  BTCUSDT-trades-2024-08-09.zip\n")
    with pytest.raises(ChecksumMismatch, match=r"BTCUSDT-trades-2024-08-09\.zip: SHA-256"):
        fetch(spot(DAYS[1]), archive.settings)
    left = [p.name for p in archive.settings.cache_dir.rglob("*") if p.is_file()]
    assert left == [], "neither the bad file nor its .part may stay in the cache"


def test_a_checksum_file_for_another_file_is_an_error(archive: Archive) -> None:
    checksum = archive.root / (archive.paths["spot-0808"].lstrip("/") + ".CHECKSUM")
    checksum.write_text(f"{'0' * 64}  ETHUSDT-trades-2024-08-08.zip\n")
    with pytest.raises(FetchError, match=r"does not hold a SHA-256 for BTCUSDT-trades-2024-08-08\.zip"):
        fetch(spot(DAYS[0]), archive.settings)


def test_a_day_the_archive_lacks_is_named_and_skip_missing_imports_the_rest(
    archive: Archive, tmp_path: Path
) -> None:
    request = spot(date(2024, 8, 8), date(2024, 8, 10))
    with pytest.raises(FetchError, match=r"does not have: BTCUSDT trades 2024-08-10 \(HTTP 404") as e:
        fetch(request, archive.settings)
    assert "--skip-missing" in str(e.value)
    assert (
        archive.settings.cache_dir / "binance/spot/BTCUSDT/trades/BTCUSDT-trades-2024-08-08.zip"
    ).is_file()
    fetched, imported = fetch_tape(request, archive.settings, tmp_path / "tape", skip_missing=True)
    assert [r.period for r in fetched.missing] == ["2024-08-10"]
    assert imported.manifest.rows["trade"] == zip_rows(archive, "spot-0808")


def test_a_symbol_that_never_existed_says_so(archive: Archive) -> None:
    with pytest.raises(FetchError, match="no spot trades file for NOSUCHCOIN on any requested day"):
        fetch(spot(*DAYS, symbols=("NOSUCHCOIN",)), archive.settings)


def test_monthly_files_replace_the_days_of_whole_months(archive: Archive, spot_0809: Path) -> None:
    publish_binance(archive.root, "spot", "trades", "BTCUSDT", "2024-07", spot_0809)
    days = (*(date(2024, 7, d) for d in range(1, 32)), date(2024, 8, 8))
    remotes = plan(FetchRequest("binance", ("BTCUSDT",), days, monthly=True), archive.settings)
    assert [r.filename for r in remotes] == ["BTCUSDT-trades-2024-07.zip", "BTCUSDT-trades-2024-08-08.zip"]
    result = fetch(FetchRequest("binance", ("BTCUSDT",), days, monthly=True), archive.settings)
    assert len(result.downloaded) == 2
    assert archive.server.requests("BTCUSDT-trades-2024-07.zip")[0].path.startswith("/data/spot/monthly/")


def test_unknown_kind_and_market_are_refused_before_any_request(archive: Archive) -> None:
    from core.errors import ConfigError

    with pytest.raises(FetchError, match="binance spot publishes no bookTicker"):
        fetch(FetchRequest("binance", ("BTCUSDT",), DAYS, kinds=("bookTicker",)), archive.settings)
    with pytest.raises(ConfigError, match="no market 'coinm'"):
        fetch(FetchRequest("binance", ("BTCUSDT",), DAYS, market="coinm"), archive.settings)
    with pytest.raises(ConfigError, match="unknown source 'kraken'"):
        fetch(FetchRequest("kraken", ("BTCUSDT",), DAYS), archive.settings)
    assert archive.server.log == []
