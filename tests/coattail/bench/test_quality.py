"""The gate's quality check: alert changes against the release notes, lost labels, recall, ratios."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from coattail.backtest.signals import SIGNALS_FILE
from coattail.bench.compare import quality, ratios
from coattail.bench.measure import Measurement
from coattail.bench.release_notes import FILE, AlertChange, ReleaseNotes, load_release_notes
from coattail.reference import from_tape, run_reference
from core.errors import CoattailError
from core.tape import Tape
from pipeline.config import ConfigLoader
from pipeline.detectors.whale import WhaleSettings
from tests.coattail.coattail_tapekit import make_tape
from tests.pipeline.detectors.alpha_kit import config as alpha_config
from tests.pipeline.detectors.alpha_kit import planted
from tests.pipeline.test_basis_spark import write_tape

BUDGETS = {
    "max_lost_labels": 0,
    "max_undeclared_alert_changes": 0,
    "max_recall_drop": 0.0,
    "max_pnl_drop_usd": 0.0,
}


def run_dir(path: Path, thresholds: dict[str, float], hit: list[bool], recall: float) -> Measurement:
    """A run directory of the reference's outputs under ``thresholds``, with two labels hit or not."""
    tape = make_tape(
        path.parent / f"{path.name}-tape",
        trades=[(1, "BTCUSDT", 1, 50_000.0, 30.0, "buy"), (2, "BTCUSDT", 2, 50_000.0, 60.0, "buy")],
    )
    base = ConfigLoader().load("small", env={})
    merged = {**base.settings_of(WhaleSettings).thresholds_usd, **thresholds}
    config = ConfigLoader().load("small", env={}, overrides={"settings.MOD-001.thresholds_usd": merged})
    run_reference(from_tape(tape), config).save(path / "pipeline")
    labels = [
        {"label": {"kind": "whale", "symbol": "BTCUSDT", "start_us": i, "event_ids": [f"e{i}"]}, "hit": h}
        for i, h in enumerate(hit)
    ]
    (path / "validation.json").write_text(json.dumps({"labels": {"results": labels}}))
    summary = {"scores": {"MOD-001": {"precision": 1.0, "recall": recall}}, "throughput_eps": 100.0}
    return Measurement(path.name, "max", 1, path, summary)


def test_an_undeclared_alert_change_and_a_lost_label_miss_the_budget(tmp_path: Path) -> None:
    baseline = run_dir(tmp_path / "baseline", {}, [True, True], 1.0)
    candidate = run_dir(tmp_path / "candidate", {"BTCUSDT": 2_000_000.0}, [True, False], 0.5)
    verdict = quality(baseline, candidate, ReleaseNotes())
    assert verdict.diff_totals["vanished"] == 1 and verdict.diff_totals["changed"] == 1
    assert {(u["detector"], u["kind"]) for u in verdict.undeclared} == {
        ("MOD-001", "vanished"),
        ("MOD-001", "changed"),
    }
    assert [label["start_us"] for label in verdict.lost_labels] == [1]
    missed = verdict.misses(BUDGETS)
    assert len(missed) == 3 and "recall fell by 0.500" in missed[2]
    # declared in the release notes, the alert changes pass; the lost label still does not
    notes = ReleaseNotes(alert_changes=(AlertChange(detector="MOD-001", why="BTC threshold 1M -> 2M"),))
    declared = quality(baseline, candidate, notes)
    assert declared.undeclared == [] and len(declared.misses(BUDGETS)) == 2
    only_vanished = ReleaseNotes(
        alert_changes=(AlertChange(detector="MOD-001", symbols=("BTCUSDT",), kinds=("vanished",), why="x"),)
    )
    assert [u["kind"] for u in quality(baseline, candidate, only_vanished).undeclared] == ["changed"]
    assert quality(baseline, baseline, ReleaseNotes()).misses(BUDGETS) == []


def test_release_notes_file_is_read_and_a_bad_one_is_named(tmp_path: Path) -> None:
    assert load_release_notes(tmp_path) == ReleaseNotes()
    (tmp_path / FILE).write_text(
        "alert_changes:\n  - {detector: MOD-002, kinds: [appeared], why: z 3 -> 3.5}\n"
    )
    notes = load_release_notes(tmp_path)
    assert notes.declares("MOD-002", "ETHUSDT", "appeared") and not notes.declares(
        "MOD-002", "ETHUSDT", "vanished"
    )
    (tmp_path / FILE).write_text("alert_changes:\n  - {detector: MOD-002, kinds: [gone]}\n")
    with pytest.raises(CoattailError, match=FILE):
        load_release_notes(tmp_path)


def test_ratios_take_median_and_spread_over_the_pairs(tmp_path: Path) -> None:
    def m(side: str, eps: float, e2e: float | None) -> Measurement:
        summary = {"throughput_eps": eps, "timings_s": {"end_to_end_s": e2e}}
        return Measurement(side, "max", 1, tmp_path, summary)

    pairs = [
        (m("baseline", 100, 10), m("candidate", 150, 8)),
        (m("baseline", 100, 10), m("candidate", 90, None)),
        (m("baseline", 200, 10), m("candidate", 240, 9)),
    ]
    got = ratios(pairs)
    assert got["throughput_eps"] == {"median": 1.2, "min": 0.9, "max": 1.5, "n": 3.0}
    assert got["end_to_end_s"]["n"] == 2  # a side without the figure leaves the pair out
    assert "reference_s" not in got


def signal_run(path: Path, tape: Path, flip: bool) -> Measurement:
    """A run directory of the reference's outputs over a planted-edge tape (MOD-011's signals); ``flip``:
    every signal's direction reversed, as a candidate that broke the signals would give."""
    run_reference(from_tape(Tape.open(tape)), alpha_config()).save(path / "pipeline")
    signals = path / "pipeline" / SIGNALS_FILE
    frame = pl.read_parquet(signals)
    if flip:
        frame.with_columns(-pl.col("direction")).write_parquet(signals)
    (path / "run.json").write_text(json.dumps({"tapes": [str(tape)]}))
    return Measurement(path.name, "max", 1, path, {"scores": {}})


def test_signals_that_make_less_miss_the_pnl_budget(tmp_path: Path) -> None:
    tape = write_tape(tmp_path / "tape", planted(3, edge_bps=30.0, whales=80))
    baseline = signal_run(tmp_path / "baseline", tape, flip=False)
    same = quality(baseline, signal_run(tmp_path / "same", tape, flip=False), ReleaseNotes())
    assert same.pnl_drop() == 0.0 and same.pnl["baseline"]["trades"] > 0
    assert same.misses(BUDGETS) == []
    worse = quality(baseline, signal_run(tmp_path / "worse", tape, flip=True), ReleaseNotes())
    drop = worse.pnl_drop()
    assert drop is not None and drop > 0
    (missed,) = worse.misses(BUDGETS)
    assert "USD less than the baseline's" in missed
    assert worse.misses({**BUDGETS, "max_pnl_drop_usd": drop}) == []
    assert worse.to_dict()["pnl_drop_usd"] == drop


def test_runs_without_signals_have_no_pnl(tmp_path: Path) -> None:
    baseline = run_dir(tmp_path / "baseline", {}, [True], 1.0)
    verdict = quality(baseline, run_dir(tmp_path / "candidate", {}, [True], 1.0), ReleaseNotes())
    assert verdict.pnl == {} and verdict.pnl_drop() is None and verdict.misses(BUDGETS) == []
