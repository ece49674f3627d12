"""The state-store mode's per-key step without Spark: its state round trip, Spark's pandas hand-over,
and the property that per-key steps (any row order, any split into micro-batches) give driver mode's
tables row for row."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyspark.sql import Row
from pyspark.sql.streaming.state import GroupState, GroupStateTimeout
from pyspark.sql.types import BinaryType, StructField, StructType

from core.errors import PipelineError
from pipeline.config import Config
from pipeline.detectors.registry import ModuleRegistry
from pipeline.engine import BatchResult, EngineState
from pipeline.keyed import RECORDS, KeyedStep, assemble, pack_by_key, unpack
from pipeline.parse import parse_batch
from pipeline.runner import PipelineRunner
from pipeline.tables import schemas_of
from pipeline.testkit import T0, Item, payloads, quote, raw_table, run_engine, trade
from tests.pipeline.keyed_kit import keyed_config, rows
from tests.pipeline.strategies import event_streams, flow_streams, price_streams

CFG = keyed_config("state_store")
SCHEMAS = schemas_of(PipelineRunner(CFG, checkpoint=Path("unused"), table_sinks=[], alert_sinks=[]).tables())
"""Every table the pipeline writes (building a runner touches neither Spark nor the disk)."""


def batches(items: Sequence[Item], cuts: Sequence[int]) -> list[pa.Table]:
    """The parsed micro-batches ``run_engine`` makes of ``items`` split at ``cuts``."""
    datas = payloads(items)
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(datas))), len(datas)]
    return [pa.Table.from_batches([parse_batch(raw_table(datas[lo:hi], first_seq=lo).to_batches()[0])])
            for lo, hi in itertools.pairwise(bounds) if hi > lo]


def as_spark_gives_it(
    parsed: pa.Table, rng: random.Random, config: Config | None = None
) -> dict[tuple[str, str], list[pd.DataFrame]]:
    """What ``applyInPandasWithState`` hands each key: ``pack_by_key`` over the batch cut into Arrow
    batches (rows in any order), the key's packed rows in any order, as pandas frames in chunks."""
    order = list(range(parsed.num_rows))
    rng.shuffle(order)
    shuffled = parsed.take(pa.array(order, type=pa.int64()))
    packed = pa.Table.from_batches(
        pack_by_key(shuffled.to_batches(max_chunksize=rng.randint(1, max(1, parsed.num_rows))), config)
    ).to_pylist()
    rng.shuffle(packed)
    by_key: dict[tuple[str, str], list[dict[str, object]]] = {}
    for row in packed:
        by_key.setdefault((str(row["exchange"]), str(row["symbol"])), []).append(row)
    frames = {}
    for key, key_rows in by_key.items():
        cut = rng.randint(0, len(key_rows))
        frames[key] = [pd.DataFrame(part) for part in (key_rows[:cut], key_rows[cut:]) if part]
    return frames


def keyed_run(step: KeyedStep, parsed: pa.Table, batch_id: int, states: dict[tuple[str, str], bytes | None],
              rng: random.Random, schemas: dict[str, pa.Schema] = SCHEMAS) -> BatchResult:
    """One micro-batch the state-store way: packed by key, one step per key, assembled on the driver."""
    outs = []
    for key, frames in sorted(as_spark_gives_it(parsed, rng, step.config).items()):
        rows = unpack([blob for frame in frames for blob in frame["rows"]])
        out, states[key] = step.step(key, rows, states.get(key))
        outs.append(out)
    return assemble(pa.Table.from_pandas(pd.concat(outs), preserve_index=False), batch_id, schemas)


def same_tables(a: BatchResult, b: BatchResult) -> None:
    assert (a.records_in, a.valid, a.quarantined) == (b.records_in, b.valid, b.quarantined)
    assert set(a.tables) == set(b.tables)
    for name in a.tables:
        assert rows(a.tables[name]) == rows(b.tables[name]), name


@settings(max_examples=30)
@given(
    st.one_of(event_streams(), flow_streams(), price_streams()),
    st.lists(st.integers(min_value=1, max_value=60), max_size=5),
    st.randoms(),
)
def test_per_key_steps_give_driver_mode_tables_for_any_split_and_row_order(
    items: list[Item], cuts: list[int], rng: random.Random
) -> None:
    driver = run_engine(CFG, items, cuts)
    step = KeyedStep(CFG, ModuleRegistry().build(CFG))
    states: dict[tuple[str, str], bytes | None] = {}
    for batch_id, (parsed, expected) in enumerate(zip(batches(items, cuts), driver, strict=True)):
        same_tables(keyed_run(step, parsed, batch_id, states, rng), expected)
    assert sum(r.records_in for r in driver) == len(items)


def test_the_state_round_trip_carries_every_stateful_piece() -> None:
    step = KeyedStep(CFG, ModuleRegistry().build(CFG))
    key = ("binance", "BTCUSDT")
    first = batches([trade(1, 100.0, 1.0, T0), quote(1, 99.0, 100.0, T0 + 1)], [])[0]
    out, blob = step.step(key, first, None)
    assert blob is not None
    state = EngineState.from_bytes(blob)
    assert set(state.sequencer) == {key} and state.sequencer[key].max_trade_id == 1
    stateful = {m for m, by_key in state.detectors.items() if by_key}
    assert stateful == {"MOD-002", "MOD-003", "MOD-006", "MOD-007", "MOD-008", "MOD-009"}
    assert dict(zip(out["table"], out["rows"], strict=True)) == {RECORDS: 2, "trades": 1, "quotes": 1}
    # the restored state sees trade 1 again: a duplicate, and trade 3 after a gap of one
    second = batches([trade(1, 100.0, 1.0, T0 + 2), trade(3, 100.0, 1.0, T0 + 3)], [])[0]
    out, _ = step.step(key, second, blob)
    dq = {t: pa.ipc.open_stream(p).read_all() for t, p in zip(out["table"], out["payload"], strict=True)
          if t == "dq_metrics"}["dq_metrics"]
    assert dict(zip(dq.column("reason").to_pylist(), dq.column("count").to_pylist(), strict=True)) == {
        "DUPLICATE_ID": 1, "TRADE_ID_GAP": 1}
    # only unreadable records: no state to keep for that key
    bad = batches([b"{"], [])[0]
    assert step.step(("", ""), bad, None)[1] is None


def test_the_spark_entry_point_restores_and_updates_the_group_state() -> None:
    step = KeyedStep(CFG, ModuleRegistry().build(CFG))
    parsed = batches([trade(2**62 + 1, 100.0, 1.0, T0), quote(7, 99.0, 100.0, T0), b"{"], [])[0]

    def group_state(blob: bytes | None) -> GroupState:
        return GroupState(
            optionalValue=Row(engine=blob) if blob else Row(), batchProcessingTimeMs=0,
            eventTimeWatermarkMs=-1, timeoutConf=GroupStateTimeout.NoTimeout, hasTimedOut=False,
            watermarkPresent=False, defined=blob is not None, updated=False, removed=False,
            timeoutTimestamp=-1, keyAsUnsafe=b"",
            valueSchema=StructType([StructField("engine", BinaryType())]),
        )

    key = ("binance", "BTCUSDT")
    state = group_state(None)
    out = pd.concat(step(key, as_spark_gives_it(parsed, random.Random(1))[key], state))
    trades = pa.ipc.open_stream(out.loc[out["table"] == "trades", "payload"].iloc[0]).read_all()
    assert trades.column("trade_id").to_pylist() == [2**62 + 1]  # exact beyond 2**53
    blob = bytes(state.get[0])
    assert EngineState.from_bytes(blob).sequencer[key].max_trade_id == 2**62 + 1
    again = group_state(blob)
    list(step(key, as_spark_gives_it(parsed, random.Random(2))[key], again))
    assert EngineState.from_bytes(bytes(again.get[0])).sequencer[key].max_ts == T0


def test_assemble_refuses_lost_rows_and_unknown_tables() -> None:
    step = KeyedStep(CFG, ModuleRegistry().build(CFG))
    out, _ = step.step(("binance", "BTCUSDT"), batches([trade(1, 100.0, 1.0, T0)], [])[0], None)
    assert assemble(pa.Table.from_pandas(out, preserve_index=False), 3, SCHEMAS).valid == 1
    lost = pa.Table.from_pandas(out[out["table"] != "trades"], preserve_index=False)
    with pytest.raises(PipelineError, match="batch 3: 1 records in but 0 valid"):
        assemble(lost, 3, SCHEMAS)
    renamed = pa.Table.from_pandas(out.assign(table=out["table"].replace("trades", "nope")),
                                   preserve_index=False)
    with pytest.raises(PipelineError, match="unknown table 'nope'"):
        assemble(renamed, 3, SCHEMAS)


def test_a_checkpoint_with_driver_mode_state_is_refused_in_state_store_mode(tmp_path: Path) -> None:
    """Its detector state would silently start empty (the reverse: tests/pipeline/test_runner_keyed.py)."""
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "4.json").write_bytes(EngineState().to_bytes())
    runner = PipelineRunner(CFG, checkpoint=tmp_path, table_sinks=[], alert_sinks=[])
    with pytest.raises(PipelineError, match="holds driver-mode engine state but"):
        runner.stream()
