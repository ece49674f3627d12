"""``diff_outputs`` on the reference's outputs for one tape under two configurations."""

from __future__ import annotations

from pathlib import Path

from coattail.diff import diff_outputs
from coattail.reference import from_tape, run_reference
from pipeline.config import ConfigLoader
from pipeline.detectors.whale import WhaleSettings
from tests.coattail.coattail_tapekit import make_tape


def test_raising_a_threshold_shows_exactly_the_expected_change(tmp_path: Path) -> None:
    tape = make_tape(
        tmp_path / "t",
        trades=[
            (1, "BTCUSDT", 1, 50_000.0, 30.0, "buy"),  # 1.5M
            (2, "BTCUSDT", 2, 50_000.0, 60.0, "buy"),  # 3M
            (3, "ETHUSDT", 1, 2_500.0, 300.0, "buy"),  # 750k on a 500k threshold
        ],
    )
    base = ConfigLoader().load("small", env={})
    # Module settings merge shallowly: the whole thresholds map is given.
    thresholds = {**base.settings_of(WhaleSettings).thresholds_usd, "BTCUSDT": 2_000_000.0}
    raised = ConfigLoader().load("small", env={}, overrides={"settings.MOD-001.thresholds_usd": thresholds})
    a = run_reference(from_tape(tape), base)
    b = run_reference(from_tape(tape), raised)
    diff = diff_outputs(a, b)
    assert diff.totals() == {"appeared": 0, "vanished": 1, "changed": 1, "unchanged": 1}
    groups = {(g["detector"], g["symbol"]): g for g in diff.to_dict()["groups"]}
    assert set(groups) == {("MOD-001", "BTCUSDT")}
    btc = groups[("MOD-001", "BTCUSDT")]
    assert [v["ts_event"] for v in btc["vanished"]] == [a.alert_rows()[0]["ts_event"]]
    change = btc["changed"][0]["fields"]
    assert set(change) == {"threshold", "severity", "evidence"}  # 3M: medium (3x of 1M) -> low (1.5x of 2M)
    assert change["severity"] == {"a": "medium", "b": "low"}
    assert change["threshold"] == {"a": 1_000_000.0, "b": 2_000_000.0}
    assert diff_outputs(a, a).empty
    assert diff_outputs(b, a).totals()["appeared"] == 1
