"""The engine: streaming (any split into micro-batches) equals batch; counts; state across restarts."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import PipelineError
from pipeline.detectors.registry import ModuleRegistry
from pipeline.engine import Engine
from pipeline.parse import parse_batch
from pipeline.testkit import (
    T0,
    Item,
    alerts_of,
    dq_sums,
    payloads,
    raw_table,
    run_engine,
    small_config,
    trade,
)
from tests.pipeline.strategies import event_streams

CFG = small_config(**{"settings.MOD-001.default_threshold_usd": 500_000})


@settings(max_examples=60)
@given(event_streams(), st.lists(st.integers(min_value=1, max_value=60), max_size=6))
def test_any_micro_batch_split_gives_the_batch_result(items: list[Item], cuts: list[int]) -> None:
    whole = run_engine(CFG, items)
    split = run_engine(CFG, items, cuts)
    assert alerts_of(split).equals(alerts_of(whole))
    assert dq_sums(split) == dq_sums(whole)
    assert sum(r.records_in for r in split) == len(items)
    for r in split:
        assert r.records_in == r.valid + r.quarantined
        assert r.tables["trades"].num_rows + r.tables["quotes"].num_rows == r.valid
        assert r.tables["quarantine"].num_rows == r.quarantined


@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event_streams(max_size=40), st.integers(min_value=1, max_value=39))
def test_restart_from_saved_state_and_rerun_of_last_batch(
    tmp_path: Path, items: list[Item], cut: int
) -> None:
    datas = payloads(items)
    first, second = raw_table(datas[:cut]), raw_table(datas[cut:], first_seq=cut)
    state = tmp_path / f"state-{len(list(tmp_path.iterdir()))}"
    a = Engine(CFG, ModuleRegistry().build(CFG), state_dir=state)
    r0 = a.process(parse_batch(first), 0)
    a.commit(0)
    r1 = a.process(parse_batch(second), 1)
    a.commit(1)
    # a new process re-runs batch 1 (crash after the sinks, before Spark's commit): same output
    b = Engine(CFG, ModuleRegistry().build(CFG), state_dir=state)
    r1_again = b.process(parse_batch(second), 1)
    assert alerts_of([r1_again]).equals(alerts_of([r1]))
    assert dq_sums([r1_again]) == dq_sums([r1])
    assert alerts_of([r0, r1]).equals(alerts_of(run_engine(CFG, items)))


def _batches(items: list[Item], cut: int) -> tuple[pa.Table, pa.Table]:
    datas = payloads(items)
    return parse_batch(raw_table(datas[:cut])), parse_batch(raw_table(datas[cut:], first_seq=cut))


RETRY_ITEMS: list[Item] = [trade(1, 100.0, 1.0, T0), trade(2, 100.0, 30_000.0, T0 + 1),
                           trade(4, 100.0, 30_000.0, T0 + 2)]


def test_a_batch_retried_after_a_failed_route_is_applied_once(tmp_path: Path) -> None:
    first, second = _batches(RETRY_ITEMS, 1)
    engine = Engine(CFG, ModuleRegistry().build(CFG), state_dir=tmp_path / "state")
    engine.process(first, 0)
    engine.commit(0)
    attempt = engine.process(second, 1)  # the router fails here: no commit
    retry = engine.process(second, 1)  # Spark runs batch 1 again in the same process
    engine.commit(1)
    assert not alerts_of([attempt]).empty  # the whale of batch 1, with its id gap
    assert alerts_of([retry]).equals(alerts_of([attempt]))
    assert dq_sums([retry]) == dq_sums([attempt])


def test_a_retry_without_a_state_directory_is_refused() -> None:
    first, second = _batches(RETRY_ITEMS, 1)
    engine = Engine(CFG, ModuleRegistry().build(CFG))
    engine.process(first, 0)
    engine.commit(0)
    engine.process(second, 1)
    with pytest.raises(PipelineError, match="failed batch without a state directory"):
        engine.process(second, 1)


def test_a_checkpoint_without_engine_state_is_refused(tmp_path: Path) -> None:
    _, second = _batches(RETRY_ITEMS, 1)
    engine = Engine(CFG, ModuleRegistry().build(CFG), state_dir=tmp_path / "state")
    with pytest.raises(PipelineError, match="delete the checkpoint directory to start over"):
        engine.process(second, 7)
    (tmp_path / "state").mkdir()
    with pytest.raises(PipelineError, match="missing or empty"):
        engine.process(second, 7)
    assert engine.process(second, 0).valid == 2  # batch 0 starts from empty state by definition
