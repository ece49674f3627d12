"""``coattail bench``'s tape cuts on the command line: refused before anything runs when they cannot
apply; ``coattail tape info`` names the busiest hour."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from coattail.cli import app
from core.timefmt import format_us
from pipeline.testkit import quote, trade
from replay.testkit import T0, write_tape


def _tape(path: Path) -> Path:
    # a minute apart, then a burst: the busiest hour starts at the burst's first event
    trades = [trade(i, 100.0, 1.0, T0 + i * 60_000_000)[1] for i in range(3)]
    trades += [trade(3 + i, 100.0, 1.0, T0 + 7_200_000_000 + i)[1] for i in range(5)]
    write_tape(path, trades, [quote(0, 99.0, 101.0, T0 + 1)[1]])
    return path


def test_a_window_without_events_is_refused_with_the_tapes_span(tmp_path: Path) -> None:
    tape = _tape(tmp_path / "t")
    out = CliRunner().invoke(app, ["bench", "--tape", str(tape), "--from", format_us(T0 + 600_000_000),
                                   "--to", format_us(T0 + 700_000_000), "--runs", str(tmp_path / "runs")])
    assert out.exit_code == 1, out.output
    assert "holds no events" in out.output and "spans" in out.output
    assert not (tmp_path / "runs" / "bench").exists()  # nothing ran


def test_two_cuts_at_once_are_refused(tmp_path: Path) -> None:
    tape = _tape(tmp_path / "t")
    out = CliRunner().invoke(app, ["bench", "--tape", str(tape), "--events", "3", "--busiest", "1h",
                                   "--runs", str(tmp_path / "runs")])
    assert out.exit_code == 2, out.output
    assert "give one of them" in out.output


def test_tape_info_names_the_busiest_hour(tmp_path: Path) -> None:
    out = CliRunner().invoke(app, ["tape", "info", str(_tape(tmp_path / "t"))])
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert f"busiest hour {format_us(T0 + 7_200_000_000)}" in text
    assert ": 5 events" in text
