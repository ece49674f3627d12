"""Label matching, golden files and reference agreement on small hand-made outputs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from coattail.reference import from_tape, run_reference
from coattail.run.outputs import BASIS_COLUMNS, DQ_COLUMNS, SPREAD_COLUMNS, RunOutputs
from coattail.validate import compare_golden, compare_with_reference, validate_labels, write_golden
from core.errors import ValidationFailed
from core.labels import Label
from core.tape import Tape
from pipeline.config import Config
from pipeline.tables import ALERTS
from tests.coattail.coattail_tapekit import at, make_tape


def whale_tape(tmp_path: Path) -> Tape:
    return make_tape(
        tmp_path / "w",
        trades=[
            (1, "BTCUSDT", 1, 50_000.0, 1.0, "buy"),
            (2, "BTCUSDT", 2, 50_000.0, 30.0, "buy"),  # whale, labelled
            (3, "BTCUSDT", 5, 50_000.0, 1.0, "buy"),  # ids 3 and 4 missing: labelled gap
            (4, "ETHUSDT", 1, 2_500.0, 300.0, "sell"),  # whale, not labelled
        ],
        labels=[
            Label(
                kind="whale",
                detector="MOD-001",
                exchange="binance",
                symbol="BTCUSDT",
                start_us=at(2),
                end_us=at(2),
                event_ids=("trade:binance:BTCUSDT:2",),
            ),
            Label(
                kind="trade_id_gap",
                detector="MOD-004",
                expect="dq",
                reason="TRADE_ID_GAP",
                count=2,
                exchange="binance",
                symbol="BTCUSDT",
                start_us=at(3),
                end_us=at(3),
            ),
            Label(
                kind="reorder",
                detector="MOD-004",
                expect="none",
                exchange="binance",
                symbol="BTCUSDT",
                start_us=at(3),
                end_us=at(3),
            ),
        ],
    )


def without(outputs: RunOutputs, alert_ids: set[str]) -> RunOutputs:
    keep = [a for a in outputs.alert_rows() if a["alert_id"] not in alert_ids]
    table = pa.Table.from_pylist(keep, schema=outputs.alerts.schema)
    return RunOutputs(table, outputs.dq, outputs.spread_metrics, outputs.records_in, outputs.valid)


@pytest.fixture
def tape_and_outputs(tmp_path: Path, config: Config) -> tuple[list[Label], RunOutputs]:
    tape = whale_tape(tmp_path)
    return list(tape.manifest.labels), run_reference(from_tape(tape), config)


def test_every_label_hit_and_scores(tape_and_outputs: tuple[list[Label], RunOutputs]) -> None:
    labels, outputs = tape_and_outputs
    result = validate_labels(labels, outputs, dq_window_seconds=60)
    assert result.ok
    assert [r.hit for r in result.results] == [True, True]
    scores = {s.detector: s for s in result.scores}
    assert scores["MOD-001"].recall == 1.0
    assert scores["MOD-001"].alerts == 2
    assert scores["MOD-001"].precision == 0.5  # the ETHUSDT whale has no label
    assert [u["symbol"] for u in result.unexpected] == ["ETHUSDT"]
    assert result.unexpected[0]["evidence"]["trade_id"] == 1
    assert scores["MOD-004"].recall == 1.0


def test_missing_alert_fails_validation(tape_and_outputs: tuple[list[Label], RunOutputs]) -> None:
    labels, outputs = tape_and_outputs
    btc = {a["alert_id"] for a in outputs.alert_rows() if a["symbol"] == "BTCUSDT"}
    result = validate_labels(labels, without(outputs, btc), dq_window_seconds=60)
    assert not result.ok
    assert [m.label["kind"] for m in result.misses] == ["whale"]
    assert {s.detector: s.recall for s in result.scores}["MOD-001"] == 0.0


def test_short_dq_count_fails_validation(tape_and_outputs: tuple[list[Label], RunOutputs]) -> None:
    labels, outputs = tape_and_outputs
    halved = outputs.dq.with_columns(pl.col("count") // 2)
    result = validate_labels(
        labels, RunOutputs(outputs.alerts, halved, outputs.spread_metrics, 0, 0), dq_window_seconds=60
    )
    assert [(m.label["reason"], m.found_count) for m in result.misses] == [("TRADE_ID_GAP", 1)]


def test_alert_of_wrong_symbol_or_time_does_not_hit(tape_and_outputs: tuple[list[Label], RunOutputs]) -> None:
    labels, outputs = tape_and_outputs
    shifted = [lb.model_copy(update={"start_us": at(30), "end_us": at(40)}) for lb in labels[:1]]
    assert not validate_labels(shifted, outputs, dq_window_seconds=60).ok
    other = [lb.model_copy(update={"symbol": "SOLUSDT"}) for lb in labels[:1]]
    assert not validate_labels(other, outputs, dq_window_seconds=60).ok


def test_alert_in_a_tolerating_label_is_neither_hit_nor_false_positive(
    tape_and_outputs: tuple[list[Label], RunOutputs],
) -> None:
    labels, outputs = tape_and_outputs
    eth_whale = Label(kind="whale", detector="MOD-002", exchange="binance", symbol="ETHUSDT",
                      start_us=at(4), end_us=at(4), tolerates=("MOD-001",))
    result = validate_labels([*labels, eth_whale], outputs, dq_window_seconds=60)
    eth_alert = next(a["alert_id"] for a in outputs.alert_rows() if a["symbol"] == "ETHUSDT")
    assert result.tolerated == [eth_alert]
    assert result.unexpected == []
    assert {s.detector: s.precision for s in result.scores}["MOD-001"] == 1.0
    elsewhere = eth_whale.model_copy(update={"start_us": at(30), "end_us": at(40)})
    assert validate_labels([*labels, elsewhere], outputs, dq_window_seconds=60).tolerated == []


def test_golden_round_trip_and_detected_changes(
    tmp_path: Path, tape_and_outputs: tuple[list[Label], RunOutputs]
) -> None:
    _, outputs = tape_and_outputs
    path = tmp_path / "golden" / "w.json"
    assert write_golden(path, outputs.alert_rows()) == 2
    text = path.read_text()
    assert json.loads(text) == sorted(
        json.loads(text),
        key=lambda r: (r["detector"], r["exchange"], r["symbol"], r["ts_event"], r["alert_id"]),
    )
    assert compare_golden(path, outputs.alert_rows()).ok
    rows = outputs.alert_rows()
    rows[0] = {**rows[0], "severity": "critical"}
    changed = compare_golden(path, rows[:1] + rows[1:])
    assert not changed.ok
    assert changed.changed[0]["fields"] == {"severity": {"golden": "low", "run": "critical"}}
    dropped = compare_golden(path, rows[1:])
    assert len(dropped.missing) == 1 and not dropped.unexpected


def test_golden_file_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="coattail golden update"):
        compare_golden(tmp_path / "absent.json", [])
    bad = tmp_path / "bad.json"
    bad.write_text('[{"alert_id": "x"}]')
    with pytest.raises(ValidationFailed, match="exactly the fields"):
        compare_golden(bad, [])


def test_agreement_reports_each_difference(tape_and_outputs: tuple[list[Label], RunOutputs]) -> None:
    _, ref = tape_and_outputs
    assert compare_with_reference(ref, ref).ok
    rows = ref.alert_rows()
    changed = {**rows[0], "severity": "high", "value": rows[0]["value"] * (1 + 1e-6)}
    evidence = json.loads(rows[1]["evidence"])
    moved = {
        **rows[1],
        "evidence": json.dumps({**evidence, "side": "buy" if evidence["side"] == "sell" else "sell"}),
    }
    extra = {**rows[0], "alert_id": "f" * 32}
    table = pa.Table.from_pylist([changed, moved, extra], schema=ref.alerts.schema)
    dq = ref.dq.with_columns(pl.col("count") + 1)
    pipeline = RunOutputs(table, dq, ref.spread_metrics, ref.records_in, ref.valid)
    got = compare_with_reference(pipeline, ref)
    assert not got.ok
    assert [d["alert_id"] for d in got.only_pipeline] == ["f" * 32]
    assert got.only_reference == []
    fields = {d["alert_id"]: set(d["fields"]) for d in got.alert_differences}
    assert fields == {rows[0]["alert_id"]: {"severity", "value"}, rows[1]["alert_id"]: {"evidence"}}
    assert len(got.dq_differences) == ref.dq.height
    # Float noise below the tolerance is agreement.
    noisy = {**rows[0], "value": rows[0]["value"] * (1 + 1e-12)}
    quiet = RunOutputs(
        pa.Table.from_pylist([noisy, rows[1]], schema=ref.alerts.schema), ref.dq, ref.spread_metrics, 0, 0
    )
    assert compare_with_reference(quiet, ref).alert_differences == []


def test_agreement_reports_basis_rows_that_differ_or_are_missing() -> None:
    row = {"asset": "BTC", "exchange_a": "binance", "symbol_a": "BTCUSDT", "exchange_b": "coinbase",
           "symbol_b": "BTC-USD", "window_start": 0, "window_end": 10, "price_a": 100.4, "price_b": 100.0,
           "carried_a": False, "carried_b": False, "basis_bps": 39.92}
    ref = RunOutputs(pa.Table.from_pylist([], schema=ALERTS.schema), pl.DataFrame(schema=DQ_COLUMNS),
                     pl.DataFrame(schema=SPREAD_COLUMNS), 0, 0,
                     basis_metrics=pl.DataFrame([row, {**row, "window_start": 10, "window_end": 20}],
                                                schema=BASIS_COLUMNS))
    assert compare_with_reference(ref, ref).ok
    ours = replace(ref, basis_metrics=pl.DataFrame([{**row, "carried_b": True, "basis_bps": 39.93}],
                                                   schema=BASIS_COLUMNS))
    got = compare_with_reference(ours, ref)
    assert [set(d["fields"]) for d in got.basis_differences if "fields" in d] == [{"carried_b", "basis_bps"}]
    assert [d["only_in"] for d in got.basis_differences if "only_in" in d] == ["reference"]
