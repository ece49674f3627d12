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


def test_the_price_chart_marks_impact_with_stars_and_bursts_with_triangles_their_way(config: Config) -> None:
    from coattail.reference.alerts import alert_row, alerts_table
    from coattail.run.outputs import RunOutputs

    def alert(detector: str, key: int, value: float) -> dict[str, object]:
        return alert_row(detector=detector, kind="k", exchange="binance", symbol="BTCUSDT", key=key,
                         ts_event=1_000_000 * key, severity="low", value=value, threshold=1.0, evidence="{}",
                         event_ids=[])  # fmt: skip

    rows = [alert("MOD-008", 1, 30.0), alert("MOD-009", 2, 60.0), alert("MOD-009", 3, -60.0)]
    rows.append(alert("MOD-001", 4, 2e6))
    outputs = RunOutputs(
        alerts=alerts_table(rows), dq=pl.DataFrame(), spread_metrics=pl.DataFrame(), records_in=0, valid=0
    )
    prices = pl.DataFrame(
        {
            "exchange": ["binance"] * 5,
            "symbol": ["BTCUSDT"] * 5,
            "ts_event": [1_000_000 * i for i in range(5)],
            "price": [100.0 + i for i in range(5)],
        }
    )
    page = build_report(ReportInputs(title="t", outputs=outputs, prices=prices, throughput=pl.DataFrame()))
    symbols = re.search(r'"symbol":\[("[a-z-]+"(?:,"[a-z-]+")*)\]', page)
    assert symbols, "no alert markers on the price chart"
    # alerts in table order (detector, then time): the impact star, the up and down bursts, the whale
    assert symbols.group(1).split(",") == ['"diamond"', '"star"', '"triangle-up"', '"triangle-down"']
