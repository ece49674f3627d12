"""The engine: streaming (any split into micro-batches) equals batch; counts; state across restarts."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.detectors.registry import ModuleRegistry
from pipeline.engine import Engine
from pipeline.parse import parse_batch
from pipeline.testkit import (
    Item,
    alerts_of,
    dq_sums,
    event_streams,
    payloads,
    raw_table,
    run_engine,
    small_config,
)

CFG = small_config(**{"settings.MOD-001.default_threshold_usd": 500_000})


@settings(max_examples=60, deadline=None)
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


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
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
