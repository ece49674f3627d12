"""``coattail.run.source_digest``: a digest of many files that rereads only the files that changed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coattail.run import source_digest
from coattail.run.source_digest import digest

# the file system's timestamps are coarse (a few ms): the tests wait this long between a write and a digest
TICK_S = 0.05


@pytest.fixture
def settle_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files count as settled once ``TICK_S`` old, so a test's fresh files are cached at all."""
    monkeypatch.setattr(source_digest, "SETTLE_NS", int(TICK_S / 5 * 1e9))


def _tree(root: Path, contents: dict[str, bytes]) -> list[Path]:
    for name, content in contents.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    time.sleep(TICK_S)
    return sorted(root / name for name in contents)


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    read: list[Path] = []
    original = Path.read_bytes

    def counting(self: Path) -> bytes:
        read.append(self)
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", counting)
    return read


def test_unchanged_files_are_not_read_again(
    tmp_path: Path, settle_fast: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _tree(tmp_path / "src", {"a.py": b"x = 1\n", "pkg/b.py": b"y = 2\n", "c.yaml": b"k: v\n"})
    cache = tmp_path / "cache.json"
    first = digest(tmp_path / "src", files, cache)
    read = _reads(monkeypatch)
    assert digest(tmp_path / "src", files, cache) == first
    assert read == []


@pytest.mark.parametrize("name", ["a.py", "pkg/b.py", "c.yaml"])
def test_an_edit_that_keeps_size_and_modification_time_is_noticed(
    tmp_path: Path, settle_fast: None, name: str
) -> None:
    files = _tree(tmp_path / "src", {"a.py": b"x = 1\n", "pkg/b.py": b"y = 2\n", "c.yaml": b"k: v\n"})
    cache = tmp_path / "cache.json"
    before = digest(tmp_path / "src", files, cache)
    path = tmp_path / "src" / name
    stat = path.stat()
    path.write_bytes(path.read_bytes().replace(b"1", b"9").replace(b"2", b"8").replace(b"v", b"w"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as if never modified
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    time.sleep(TICK_S)
    assert digest(tmp_path / "src", files, cache) != before


def test_a_file_modified_just_now_is_not_cached(tmp_path: Path) -> None:
    files = _tree(tmp_path / "src", {"a.py": b"x = 1\n"})
    cache = tmp_path / "cache.json"
    digest(tmp_path / "src", files, cache)  # the default settling time: the file is too recent
    assert json.loads(cache.read_text()) == {}


def test_an_unreadable_cache_is_rebuilt(tmp_path: Path, settle_fast: None) -> None:
    files = _tree(tmp_path / "src", {"a.py": b"x = 1\n", "b.py": b"y = 2\n"})
    cache = tmp_path / "cache.json"
    expected = digest(tmp_path / "src", files, tmp_path / "other.json")
    for broken in ("{", '{"a.py": 3}', '{"a.py": [[1, 2], "d"]}', "[]"):
        cache.write_text(broken)
        assert digest(tmp_path / "src", files, cache) == expected
        assert set(json.loads(cache.read_text())) == {"a.py", "b.py"}


@settings(max_examples=30)
@given(contents=st.lists(st.binary(max_size=64), min_size=1, max_size=5))
def test_a_digest_from_the_cache_is_the_one_of_the_contents(tmp_path_factory: pytest.TempPathFactory,
                                                            contents: list[bytes]) -> None:  # fmt: skip
    root = tmp_path_factory.mktemp("digest")
    names = [f"f{i}.py" for i in range(len(contents))]
    for name, content in zip(names, contents, strict=True):
        (root / name).write_bytes(content)
    files = [root / name for name in names]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(source_digest, "SETTLE_NS", -(10**18))  # every file settled: all cached at once
        first = digest(root, files, root / "cache.json")
        assert set(json.loads((root / "cache.json").read_text())) == set(names)
        assert digest(root, files, root / "cache.json") == first
    # no cache involved: the same digest; other contents: another one
    assert digest(root, files, root / "none.json") == first
    (root / names[0]).write_bytes(contents[0] + b"!")
    assert digest(root, files, root / "none2.json") != first
