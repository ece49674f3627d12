"""Fault injection: every kind lands in the labels, and the labels match what the stream really holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ConfigError
from pipeline.testkit import trade
from replay.engine import Replay
from replay.faults import FaultSpec, load_fault_spec, parse_fault_spec
from replay.targets.memory import MemoryTarget
from replay.testkit import T0, write_tape

SPEC = {
    "drops": {"rate": 0.01},
    "duplicates": {"rate": 0.01},
    "reorder": {"rate": 0.02, "max_delay_ms": 800},
    "late": {"rate": 0.005, "delay_ms": 15_000},
    "corrupt": {"rate": 0.005},
    "throttle": {"every": 2_000, "records": 5},
    "disconnect": {"every": 3_000, "pause_ms": 0},
}
WATERMARK_US = 10_000_000


def _tape(path: Path) -> Path:
    trades = [
        {
            "exchange": "binance",
            "symbol": sym,
            "trade_id": 1_000 + i,
            "price": 100.0,
            "qty": 1.0,
            "side": "buy",
            "ts_event": T0 + i * 20_000 + k,
            "ts_recv": None,
        }
        for i in range(3_000)
        for k, sym in enumerate(("BTCUSDT", "ETHUSDT"))
    ]
    quotes = [
        {
            "exchange": "binance",
            "symbol": "BTCUSDT",
            "bid_px": 1.0,
            "bid_qty": 1.0,
            "ask_px": 1.1,
            "ask_qty": 1.0,
            "update_id": i,
            "ts_event": T0 + i * 50_000 + 3,
            "ts_recv": None,
        }
        for i in range(1_000)
    ]
    write_tape(path, trades, quotes)
    return path


def _reference_dq(events: list[dict[str, Any]]) -> dict[str, int]:
    """docs/DETECTORS.md's LATE_EVENT, DUPLICATE_ID and TRADE_ID_GAP over the arrival order."""
    counts = {"LATE_EVENT": 0, "DUPLICATE_ID": 0, "TRADE_ID_GAP": 0, "PARSE_ERROR": 0}
    max_ts: dict[str, int] = {}
    max_id: dict[str, int] = {}
    seen: dict[str, set[int]] = {}
    for e in events:
        if e["corrupt"]:
            counts["PARSE_ERROR"] += 1
            continue
        key = f"{e['exchange']}:{e['symbol']}"
        if key in max_ts and e["ts_event"] < max_ts[key] - WATERMARK_US:
            counts["LATE_EVENT"] += 1
        max_ts[key] = max(max_ts.get(key, e["ts_event"]), e["ts_event"])
        if e["kind"] == 0:
            ids = seen.setdefault(key, set())
            tid = e["trade_id"]
            if tid in ids:
                counts["DUPLICATE_ID"] += 1
            elif key in max_id and tid > max_id[key] + 1:
                counts["TRADE_ID_GAP"] += tid - max_id[key] - 1
            ids.add(tid)
            max_id[key] = max(max_id.get(key, tid), tid)
    return counts


def _run(tape: Path, seed: int, spec: dict[str, Any] = SPEC) -> tuple[Any, MemoryTarget]:
    target = MemoryTarget()
    summary = Replay(
        [tape],
        target,
        faults=parse_fault_spec(spec, "test"),
        seed=seed,
        watermark_us=WATERMARK_US,
        batch_rows=700,
    ).run()
    return summary, target


def test_every_fault_kind_is_labelled_and_counts_match_the_stream(tmp_path: Path) -> None:
    tape = _tape(tmp_path / "t")
    summary, target = _run(tape, seed=7)
    kinds = {label.kind for label in summary.labels}
    assert {
        "drop",
        "duplicate",
        "reorder",
        "delay",
        "late_event",
        "malformed",
        "trade_id_gap",
        "throttle",
        "disconnect",
    } <= kinds
    arrived = target.table().to_pylist()
    drops = summary.fault_counts["drop"]
    assert summary.sent == len(arrived) == 7_000 - drops + summary.fault_counts["duplicate"]
    expected = _reference_dq(arrived)
    labelled: dict[str, int] = {}
    for label in summary.labels:
        if label.expect == "dq":
            assert label.reason is not None and label.count is not None
            labelled[label.reason] = labelled.get(label.reason, 0) + label.count
    assert labelled == {k: v for k, v in expected.items() if v}
    assert all(lb.exchange == "" for lb in summary.labels if lb.reason == "PARSE_ERROR")


@settings(max_examples=8)
@given(st.integers(0, 2**32))
def test_same_seed_same_faults_any_seed_consistent(seed: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        tape = _tape(Path(tmp) / "t")
        spec = {k: v for k, v in SPEC.items() if k not in ("throttle", "disconnect")}
        a, ta = _run(tape, seed, spec)
        b, tb = _run(tape, seed, spec)
        assert a.labels == b.labels
        assert ta.table().drop_columns(["ts_sent"]).equals(tb.table().drop_columns(["ts_sent"]))
        labelled: dict[str, int] = {}
        for label in a.labels:
            if label.expect == "dq" and label.reason and label.count:
                labelled[label.reason] = labelled.get(label.reason, 0) + label.count
        assert labelled == {k: v for k, v in _reference_dq(ta.table().to_pylist()).items() if v}


def test_tape_manifest_faults_apply_by_default(tmp_path: Path) -> None:
    path = tmp_path / "t"
    rows = [trade(i, 1.0, 1.0, T0 + i * 1000)[1] for i in range(500)]
    write_tape(path, rows, [], faults={"duplicates": {"rate": 0.1}, "seed": 3})
    target = MemoryTarget()
    summary = Replay([path], target).run()
    assert summary.seed == 3 and summary.sent == 500 + summary.fault_counts["duplicate"] > 500
    assert Replay([path], MemoryTarget(), tape_faults=False).run().sent == 500


def test_bad_fault_files_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "faults.yaml"
    bad.write_text("drops: {rate: 2}\nbogus: 1\n")
    with pytest.raises(ConfigError, match=r"faults.yaml.*drops.rate.*bogus: unknown key"):
        load_fault_spec(bad)
    good = tmp_path / "ok.yaml"
    good.write_text("seed: 4\nlate: {rate: 0.1, delay_ms: 20000}\n")
    assert load_fault_spec(good) == FaultSpec(seed=4, late={"rate": 0.1, "delay_ms": 20_000})


def test_named_late_events_from_a_tape_manifest(tmp_path: Path) -> None:
    """The synthetic generator's form: ``faults: {late: [{event_id, delay_ms}]}`` in the manifest."""
    path = tmp_path / "t"
    rows = [trade(i, 1.0, 1.0, T0 + i * 100_000)[1] for i in range(400)]
    late = [
        {"event_id": "trade:binance:BTCUSDT:10", "delay_ms": 15_000},
        {"event_id": "trade:binance:BTCUSDT:390", "delay_ms": 15_000},
    ]  # nothing after it: not late
    write_tape(path, rows, [], faults={"late": late})
    target = MemoryTarget()
    summary = Replay(
        [path],
        target,
        faults=parse_fault_spec({"duplicates": {"rate": 0.02}}, "test"),
        watermark_us=WATERMARK_US,
    ).run()
    tape_kinds = [(lb.kind, lb.event_ids) for lb in summary.tape_fault_labels]
    assert ("late_event", ("trade:binance:BTCUSDT:10",)) in tape_kinds
    assert ("late_event", ("trade:binance:BTCUSDT:390",)) not in tape_kinds
    assert any(k == "trade_id_gap" for k, _ in tape_kinds)
    assert {lb.kind for lb in summary.labels} == {"duplicate"}
    ids = [r["trade_id"] for r in target.table().to_pylist()]
    assert ids.index(159) < ids.index(10) < ids.index(161)  # 15 s later: ties go to the earlier event
    both = [lb for lb in summary.labels + summary.tape_fault_labels if lb.expect == "dq"]
    counted: dict[str, int] = {}
    for lb in both:
        assert lb.reason is not None and lb.count is not None
        counted[lb.reason] = counted.get(lb.reason, 0) + lb.count
    assert counted == {k: v for k, v in _reference_dq(target.table().to_pylist()).items() if v}


def test_malformed_named_event_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="kind:exchange:symbol:id"):
        path = tmp_path / "t"
        write_tape(
            path,
            [
                {
                    "exchange": "b",
                    "symbol": "S",
                    "trade_id": 1,
                    "price": 1.0,
                    "qty": 1.0,
                    "side": "buy",
                    "ts_event": T0,
                    "ts_recv": None,
                }
            ],
            [],
            faults={"late": [{"event_id": "nonsense", "delay_ms": 5}]},
        )
        Replay([path], MemoryTarget()).run()
