"""The run's reference input built per hand-over (``ArrivalTarget``) is the whole arrival converted at once
(``from_arrival`` over a ``MemoryTarget``'s table): the same frame and byte-equal reference outputs, on
generated faulted tapes and a real capture; and the replay's rows are gone before the detectors run."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coattail.reference import from_arrival, run_reference
from coattail.reference.arrival import ArrivalTarget, stack
from coattail.reference.inputs import ARRIVAL_SCHEMA
from coattail.run import judge
from coattail.run.outputs import RunOutputs
from core.tape import Tape
from pipeline.config import Config, ConfigLoader
from replay.engine import Replay
from replay.faults import Disturbance, FaultSpec
from replay.readers.importer import import_files
from replay.targets.base import Target
from replay.targets.memory import MemoryTarget
from replay.testkit import write_tape
from tests.conftest import REAL_TAPES
from tests.replay.strategies import quotes, trades

MEDIUM = ConfigLoader().load("medium", env={})
"""Every market module but the large tier's: MOD-001..007 read the arrival frame in every way."""


class _Both(Target):
    """Hands every table to a ``MemoryTarget`` and an ``ArrivalTarget`` alike: same rows, same ``ts_sent``."""

    name = "both"

    def __init__(self) -> None:
        super().__init__()
        self.memory = MemoryTarget()
        self.arrival = ArrivalTarget()

    def _send(self, table: pa.Table, ts_sent: int) -> None:
        self.memory.send(table, ts_sent)
        self.arrival.send(table, ts_sent)

    def _disturb(self, disturbance: Disturbance) -> bool:
        return True


def _saved(outputs: RunOutputs, directory: Path) -> dict[str, Any]:
    """What a run directory keeps of ``outputs``: each table's file bytes, and the record counts."""
    outputs.save(directory)
    files = {p.name: p.read_bytes() for p in sorted(directory.iterdir())}
    return files | {"records_in": outputs.records_in, "valid": outputs.valid}


def _assert_same(tapes: list[Path], config: Config, faults: FaultSpec | None, **replay: Any) -> int:
    """Replay ``tapes`` once into both targets; the frames and the saved reference outputs are equal.
    Returns the rows sent."""
    both = _Both()
    summary = Replay(
        tapes, both, faults=faults, watermark_us=config.spark.watermark_seconds * 1_000_000, **replay
    ).run()
    whole = from_arrival(both.memory.table())
    built = both.arrival.frame()
    assert built.schema == whole.schema
    assert built.equals(whole)
    assert built.get_column("arrival").flags["SORTED_ASC"]
    with tempfile.TemporaryDirectory() as scratch:
        before = _saved(run_reference(whole, config), Path(scratch) / "whole")
        after = _saved(run_reference(built, config), Path(scratch) / "built")
    assert after == before  # byte for byte: alerts with their ts_sent, every metric table, the counts
    return summary.sent


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    trade_rows=trades(span_us=90_000_000, max_size=60),
    quote_rows=quotes(span_us=90_000_000, max_size=40),
    seed=st.integers(0, 10_000),
    rates=st.tuples(*[st.sampled_from([0.0, 0.05, 0.3])] * 5),
    every=st.none() | st.integers(1, 30),
    batch_rows=st.integers(1, 64),
)
def test_built_per_hand_over_equals_the_whole_arrival(
    trade_rows: list[dict[str, Any]],
    quote_rows: list[dict[str, Any]],
    seed: int,
    rates: tuple[float, ...],
    every: int | None,
    batch_rows: int,
) -> None:
    drops, duplicates, reorder, late, corrupt = rates
    spec = FaultSpec(
        seed=seed,
        drops={"rate": drops},
        duplicates={"rate": duplicates},
        reorder={"rate": reorder, "max_delay_ms": 3_000},
        late={"rate": late, "delay_ms": 30_000},
        corrupt={"rate": corrupt},
        # target disturbances cut a hand-over in two: parts of every size
        throttle={"every": every, "records": 1} if every else None,
        disconnect={"every": every + 3, "pause_ms": 0} if every else None,
    )
    with tempfile.TemporaryDirectory() as scratch:
        tape = Path(scratch) / "tape"
        write_tape(tape, trade_rows, quote_rows)
        _assert_same([tape], MEDIUM, spec, batch_rows=batch_rows)


@pytest.mark.parametrize("capture", ["binance-ws/spot_btcusdt_20240808.gz", "tardis"])
def test_real_capture_with_faults_gives_the_same_reference(tmp_path: Path, capture: str) -> None:
    files = (
        [REAL_TAPES / "tardis" / "tardis_trades.csv", REAL_TAPES / "tardis" / "tardis_quotes.csv"]
        if capture == "tardis"
        else [REAL_TAPES / capture]
    )
    import_files(files, tmp_path / "tape")
    spec = FaultSpec(
        seed=11,
        drops={"rate": 0.002},
        duplicates={"rate": 0.002},
        reorder={"rate": 0.01, "max_delay_ms": 2_000},
        late={"rate": 0.001, "delay_ms": 30_000},
        corrupt={"rate": 0.001},
        throttle={"every": 5_000, "records": 10},
    )
    assert _assert_same([tmp_path / "tape"], MEDIUM, spec, batch_rows=4_096) > 0


@given(
    sizes=st.lists(st.integers(0, 40), max_size=8),
    nulls=st.sets(st.sampled_from(["price", "reason", "raw", "chain", "ts_recv"])),
)
def test_stack_is_the_parts_concatenated_and_lets_them_go(sizes: list[int], nulls: set[str]) -> None:
    parts, first = [], 0
    for n in sizes:
        columns = {
            name: [None if name in nulls or i % 3 == 0 else _value(dtype, first + i) for i in range(n)]
            for name, dtype in ARRIVAL_SCHEMA.items()
        }
        columns["arrival"] = list(range(first, first + n))
        parts.append(pl.DataFrame(columns, schema=ARRIVAL_SCHEMA))
        first += n
    expected = pl.concat(parts) if parts else pl.DataFrame(schema=ARRIVAL_SCHEMA)
    given_parts = list(parts)
    stacked = stack(given_parts)
    assert given_parts == []  # taken over: nothing of the parts is held by the caller's list any more
    assert stacked.equals(expected)
    assert stacked.schema == expected.schema
    assert all(stacked.get_column(c).n_chunks() == 1 for c in stacked.columns)


def _value(dtype: Any, i: int) -> Any:
    return str(i) if dtype == pl.Utf8 else float(i) if dtype == pl.Float64 else i


def test_the_replayed_rows_are_gone_before_the_detectors_run(
    tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the replay's own rows (every kind's columns, Arrow memory) were held until the reference was done:
    # a whole day three times over at its peak. Only the arrival frame (Polars memory) may be left.
    rows = [
        {
            "exchange": "binance",
            "symbol": "BTCUSDT",
            "trade_id": i + 1,
            "price": 50_000.0 + i % 13,
            "qty": 0.5,
            "side": "buy",
            "ts_event": 1_723_161_600_000_000 + i * 1_000,
            "ts_recv": None,
        }
        for i in range(20_000)
    ]
    write_tape(tmp_path / "tape", rows, [])
    replayed = Tape.open(tmp_path / "tape").read("trade").nbytes
    seen: list[int] = []

    def detectors(frame: pl.DataFrame, cfg: Config) -> RunOutputs:
        seen.append(pa.total_allocated_bytes())
        return run_reference(frame, cfg)

    monkeypatch.setattr(judge, "run_reference", detectors)
    baseline = pa.total_allocated_bytes()
    outputs, _ = judge.reference_outputs([tmp_path / "tape"], config, None, None)
    assert outputs.records_in == len(rows)
    assert seen and seen[0] - baseline < replayed / 4
