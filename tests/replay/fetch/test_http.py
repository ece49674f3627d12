"""Downloads that survive the network: resumed after a dropped connection, retried on 5xx."""

from __future__ import annotations

import threading
from datetime import date

import pytest

from replay.fetch import FetchError, FetchRequest, Remote, fetch, http, plan
from replay.fetch.http import part_path
from tests.replay.fetch.archive_kit import Archive

DAY = date(2024, 8, 9)
REQUEST = FetchRequest("binance", ("BTCUSDT",), (DAY,))
NAME = "BTCUSDT-trades-2024-08-09.zip"


def published(archive: Archive) -> bytes:
    return (archive.root / archive.paths["spot-0809"].lstrip("/")).read_bytes()


class Recorder:
    """A progress display that remembers what it was told."""

    def __init__(self) -> None:
        self.total = 0
        self.bytes = 0
        self.files: list[tuple[str, bool]] = []

    def add_bytes_total(self, n: int) -> None:
        self.total += n

    def advance_bytes(self, n: int) -> None:
        self.bytes += n

    def file_done(self, remote: Remote, cached: bool) -> None:
        self.files.append((remote.filename, cached))


def test_a_dropped_connection_resumes_with_a_range_request(archive: Archive) -> None:
    data = published(archive)
    archive.server.drop[archive.paths["spot-0809"]] = len(data) // 2
    progress = Recorder()
    result = fetch(REQUEST, archive.settings, progress)
    assert progress.total == progress.bytes == len(data), "progress adds up to the file across the resume"
    assert progress.files == [(NAME, False)]
    log = archive.server.requests(NAME)
    assert [(r.status, r.range) for r in log] == [(200, None), (206, f"bytes={len(data) // 2}-")]
    assert result.paths[0].read_bytes() == data
    assert not part_path(result.paths[0]).exists()


def test_a_part_file_left_by_an_interrupted_run_is_resumed(archive: Archive) -> None:
    data = published(archive)
    dest = archive.settings.cache_dir / "binance/spot/BTCUSDT/trades" / NAME
    part = part_path(dest)
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:1000])
    assert not dest.exists(), "a partial download never has the final name"
    progress = Recorder()
    result = fetch(REQUEST, archive.settings, progress)
    assert [r.range for r in archive.server.requests(NAME)] == ["bytes=1000-"]
    assert result.paths[0].read_bytes() == data
    assert result.bytes_downloaded == len(data)
    assert progress.total == progress.bytes == len(data)


def test_a_corrupt_part_file_fails_the_checksum_and_the_next_fetch_starts_clean(archive: Archive) -> None:
    data = published(archive)
    part = part_path(archive.settings.cache_dir / "binance/spot/BTCUSDT/trades" / NAME)
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 1000)
    with pytest.raises(FetchError, match=NAME):
        fetch(REQUEST, archive.settings)
    assert not part.exists()
    assert fetch(REQUEST, archive.settings).paths[0].read_bytes() == data


def test_5xx_answers_are_retried(archive: Archive) -> None:
    archive.server.fail[archive.paths["spot-0809"]] = 2
    archive.server.fail[archive.paths["spot-0809"] + ".CHECKSUM"] = 1
    result = fetch(REQUEST, archive.settings)
    assert [r.status for r in archive.server.requests(NAME)] == [503, 503, 200]
    assert [r.status for r in archive.server.requests(".CHECKSUM")] == [503, 200]
    assert result.paths[0].read_bytes() == published(archive)


def test_5xx_beyond_the_retries_is_an_error_and_leaves_no_file(archive: Archive) -> None:
    archive.server.fail[archive.paths["spot-0809"]] = 100
    with pytest.raises(FetchError, match=r"HTTP 503 after 4 attempts"):
        fetch(REQUEST, archive.settings)
    assert len(archive.server.requests(NAME)) == archive.settings.retries + 1
    assert not (archive.settings.cache_dir / "binance/spot/BTCUSDT/trades" / NAME).exists()


def test_an_unreachable_archive_is_a_one_line_error(archive: Archive) -> None:
    settings = archive.settings.model_copy(update={"binance_url": "http://127.0.0.1:9", "retries": 1})
    with pytest.raises(FetchError, match=r"failed after 2 attempts: .*check the network or the archive URL"):
        fetch(REQUEST, settings)


def test_a_stopped_download_keeps_its_part_file_and_the_next_fetch_resumes_it(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http, "CHUNK", 1000)
    remote = plan(REQUEST, archive.settings)[0]
    part = part_path(archive.settings.cache_dir / remote.key.as_posix())
    stop = threading.Event()

    def stop_after_a_chunk(n: int) -> None:
        if n > 0:
            stop.set()

    with pytest.raises(FetchError, match=f"{NAME}: interrupted"):
        http.download(remote, part, archive.settings, on_bytes=stop_after_a_chunk, stop=stop)
    assert part.stat().st_size == 1000
    assert fetch(REQUEST, archive.settings).paths[0].read_bytes() == published(archive)
    assert archive.server.requests(NAME)[-1].range == "bytes=1000-"
