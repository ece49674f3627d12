"""The reference over a faulted replay: the Arrow path and the wire-bytes path agree, counts add up."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coattail.reference import from_arrival, from_wire, run_reference
from coattail.run.outputs import RECORD_REASONS
from coattail.validate import compare_with_reference
from pipeline.config import Config
from pipeline.detectors.data_quality import DataQualitySettings
from replay.engine import Replay
from replay.faults import FaultSpec
from replay.targets.memory import MemoryTarget
from tests.coattail.coattail_tapekit import make_tape


def busy_tape(path: Path) -> Path:
    trades = [
        (i * 0.5, "BTCUSDT", i + 1, 50_000.0 + (i % 7), 0.1 + (i % 11), "buy" if i % 3 else "sell")
        for i in range(400)
    ]
    trades[150] = (75.0, "BTCUSDT", 151, 50_000.0, 40.0, "buy")  # a whale
    quotes = [(i * 0.7, "BTCUSDT", 49_999.0, 50_001.0 + (i % 5), i + 1) for i in range(300)]
    make_tape(path, trades=trades, quotes=quotes)
    return path


@settings(max_examples=6, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000))
def test_arrival_and_wire_paths_agree(tmp_path: Path, config: Config, seed: int) -> None:
    tape = tmp_path / "busy"
    if not tape.exists():
        busy_tape(tape)
    spec = FaultSpec(
        seed=seed,
        duplicates={"rate": 0.02},
        reorder={"rate": 0.02, "max_delay_ms": 3_000},
        late={"rate": 0.01, "delay_ms": 30_000},
        corrupt={"rate": 0.01},
        drops={"rate": 0.01},
    )
    target = MemoryTarget()
    summary = Replay(
        [tape], target, faults=spec, watermark_us=config.spark.watermark_seconds * 1_000_000
    ).run()
    by_arrival = run_reference(from_arrival(target.table()), config)
    by_wire = run_reference(from_wire(payload for _, payload in target.records()), config)
    agreement = compare_with_reference(by_arrival, by_wire)
    assert agreement.ok, agreement.to_dict()
    assert by_arrival.records_in == summary.sent
    quarantined = by_arrival.dq.filter(pl.col("reason").is_in(list(RECORD_REASONS)))["count"].sum()
    assert by_arrival.records_in == by_arrival.valid + quarantined


def test_fault_labels_hit_by_the_reference(tmp_path: Path, config: Config) -> None:
    from coattail.validate import validate_labels

    tape = busy_tape(tmp_path / "busy")
    spec = FaultSpec(
        seed=3,
        duplicates={"rate": 0.02},
        reorder={"rate": 0.02, "max_delay_ms": 3_000},
        late={"rate": 0.01, "delay_ms": 30_000},
        corrupt={"rate": 0.01},
        drops={"rate": 0.01},
    )
    target = MemoryTarget()
    summary = Replay(
        [tape], target, faults=spec, watermark_us=config.spark.watermark_seconds * 1_000_000
    ).run()
    kinds = {lb.kind for lb in summary.labels if lb.expect == "dq"}
    assert kinds == {"duplicate", "late_event", "malformed", "trade_id_gap"}
    result = validate_labels(
        summary.labels,
        run_reference(from_arrival(target.table()), config),
        dq_window_seconds=config.settings_of(DataQualitySettings).window_seconds,
    )
    assert result.ok, [m.detail for m in result.misses]
    assert result.unexpected_dq == []  # nothing counted that the replay did not inject
