"""The report's summary cards say what was checked: a check that did not run is neither PASS nor FAIL."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from coattail.reference import from_tape, run_reference
from coattail.report import ReportInputs, build_report
from coattail.validate import validate_labels
from pipeline.config import Config
from tests.coattail.coattail_tapekit import make_tape


def _labels_card(page: str) -> str:
    found = re.search(r'<div class="card"><b>([^<]*)</b>labels</div>', page)
    assert found, "the report has no labels card"
    return found.group(1)


def test_labels_card_says_validation_did_not_run(tmp_path: Path, config: Config) -> None:
    tape = make_tape(tmp_path / "t", trades=[(i, "BTCUSDT", i + 1, 50_000.0, 0.5, "buy") for i in range(5)])
    outputs = run_reference(from_tape(tape), config)

    def card(validation: dict[str, object] | None) -> str:
        inputs = ReportInputs(
            title="t",
            outputs=outputs,
            prices=pl.DataFrame(),
            throughput=pl.DataFrame(),
            validation=validation,
        )
        return _labels_card(build_report(inputs))

    assert card(None) == "NOT RUN"
    assert card(validate_labels([], outputs, dq_window_seconds=60).to_dict()) == "PASS"
    failed = validate_labels([], outputs, dq_window_seconds=60).to_dict() | {"ok": False}
    assert card(failed) == "FAIL"
