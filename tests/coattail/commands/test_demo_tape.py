"""The demo's tape is reused only when the generator, its presets and the config are the ones that made it:
a tape cached by an older revision is generated again, so a demo never replays a stale preset."""

from __future__ import annotations

from pathlib import Path

import pytest

from coattail.commands import run as run_command
from core.tape import MANIFEST, Tape


def test_a_tape_from_other_generator_inputs_is_generated_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "demo"
    monkeypatch.setattr(run_command, "_generator_digest", lambda: "aaaa")
    run_command._demo_tape(out, "30m", 0.01, 7)
    first = (out / MANIFEST).stat().st_mtime_ns
    assert "generated from sim and config aaaa" in Tape.open(out).manifest.origin

    run_command._demo_tape(out, "30m", 0.01, 7)
    assert (out / MANIFEST).stat().st_mtime_ns == first  # same inputs: reused

    monkeypatch.setattr(run_command, "_generator_digest", lambda: "bbbb")
    run_command._demo_tape(out, "30m", 0.01, 7)
    assert "generated from sim and config bbbb" in Tape.open(out).manifest.origin


def test_the_digest_follows_the_generator_s_files() -> None:
    digest = run_command._generator_digest()
    assert len(digest) == 12 and digest == run_command._generator_digest()


def test_a_damaged_cached_tape_is_generated_again(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    out.mkdir()
    (out / MANIFEST).write_text("{not a manifest")
    run_command._demo_tape(out, "30m", 0.01, 7)
    assert Tape.open(out).manifest.rows["trade"] > 0
