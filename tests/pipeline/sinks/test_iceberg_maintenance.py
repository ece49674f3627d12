"""pyiceberg's writer maintains its tables (``IcebergSink.maintain``): expired snapshots, markers kept as
table properties, manifest merging on; a restart after maintenance re-runs no committed batch and
loses none."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import Config, RuntimeSettings
from pipeline.sinks.iceberg import MARKER_PREFIX, IcebergSink
from pipeline.tables import TRADES
from pipeline.testkit import T0, run_engine, small_config, trade

TABLE = "coattail.trades"


def lite(tmp: Path, **storage: object) -> Config:
    cfg = small_config()
    cfg = cfg.model_copy(update={"storage": cfg.storage.model_copy(update=storage)})
    return cfg.model_copy(update={"runtime": RuntimeSettings(profile="lite", state_dir=tmp)})


def batch(first_trade: int, count: int = 1) -> pa.Table:
    """Trades ``first_trade ..`` (distinct ids, so every row of every batch can be told apart)."""
    trades = [trade(i, 100.0, 1.0, T0 + i) for i in range(first_trade, first_trade + count)]
    return run_engine(small_config(), trades)[0].tables["trades"]


def trade_ids(sink: IcebergSink) -> list[int]:
    return sorted(sink.read("trades").column("trade_id").to_pylist())


def opened(cfg: Config) -> IcebergSink:
    sink = IcebergSink(cfg)
    sink.open([TRADES])
    return sink


def test_a_restart_after_maintenance_reruns_no_committed_batch_and_loses_none(tmp_path: Path) -> None:
    sink = opened(lite(tmp_path, retain_snapshots=2, maintenance_every_commits=0))
    for batch_id in range(6):
        sink.write(batch_id, "query:a", {"trades": batch(10 * batch_id)})
    sink.write(0, "query:b", {"trades": batch(1_000)})
    assert sink.maintain("trades") == {"snapshots_expired": 5}
    handle = sink.catalog.load_table(TABLE)
    assert len(handle.snapshots()) == 2  # query:a's batch 5 and query:b's batch 0
    assert handle.properties[f"{MARKER_PREFIX}query:a"] == "5"
    assert handle.properties["commit.manifest-merge.enabled"] == "true"
    before = trade_ids(sink)
    again = opened(lite(tmp_path, retain_snapshots=2, maintenance_every_commits=0))
    assert again.write(3, "query:a", {"trades": batch(30)}) == {"trades": False}
    assert again.write(5, "query:a", {"trades": batch(50)}) == {"trades": False}
    assert again.write(0, "query:b", {"trades": batch(1_000)}) == {"trades": False}
    assert trade_ids(again) == before
    assert again.write(6, "query:a", {"trades": batch(60)}) == {"trades": True}
    assert trade_ids(again) == sorted([*before, 60])


def test_maintenance_runs_every_configured_commits_after_its_hook(tmp_path: Path) -> None:
    sink = opened(lite(tmp_path, retain_snapshots=1, maintenance_every_commits=3))
    waits: list[int] = []
    sink.before_maintenance = lambda: waits.append(len(sink.catalog.load_table(TABLE).snapshots()))
    for batch_id in range(4):
        sink.write(batch_id, "query:a", {"trades": batch(batch_id)})
    # the third commit was followed by the hook (three snapshots then), and maintenance kept one; the
    # fourth commit added one
    assert waits == [3]
    assert len(sink.catalog.load_table(TABLE).snapshots()) == 2
    assert trade_ids(sink) == [0, 1, 2, 3]


def test_unset_the_interval_is_the_writer_s_own_and_a_configured_one_wins(tmp_path: Path) -> None:
    assert small_config().storage.maintenance_every_commits is None
    assert IcebergSink(lite(tmp_path / "default")).maintain_every == IcebergSink.maintain_every_default == 20
    assert IcebergSink(lite(tmp_path / "set", maintenance_every_commits=7)).maintain_every == 7
    assert IcebergSink(lite(tmp_path / "never", maintenance_every_commits=0)).maintain_every == 0


@settings(max_examples=8)
@given(steps=st.lists(st.sampled_from(["a", "b", "retry-a", "maintain", "restart"]), min_size=1, max_size=10),
       retain=st.integers(1, 3))
def test_any_appends_and_maintenance_keep_every_row_once_and_the_last_batch_per_writer(
    tmp_path_factory: pytest.TempPathFactory, steps: list[str], retain: int
) -> None:
    cfg = lite(tmp_path_factory.mktemp("maintained"), retain_snapshots=retain, maintenance_every_commits=0)
    sink = opened(cfg)
    last: dict[str, int] = {}
    appended: list[int] = []
    for step in steps:
        if step == "maintain":
            sink.maintain("trades")
        elif step == "restart":
            sink = opened(cfg)
        elif step == "retry-a":  # a re-run of writer a's last batch is skipped
            if "query:a" in last:
                batch_id = last["query:a"]
                again = sink.write(batch_id, "query:a", {"trades": batch(10 * batch_id, 2)})
                assert again == {"trades": False}
        else:
            writer, batch_id = f"query:{step}", last.get(f"query:{step}", -1) + 1
            first = (1_000 if step == "b" else 0) + 10 * batch_id
            assert sink.write(batch_id, writer, {"trades": batch(first, 2)}) == {"trades": True}
            appended += [first, first + 1]
            last[writer] = batch_id
    restarted = opened(cfg)
    assert trade_ids(restarted) == sorted(appended)
    for writer, batch_id in last.items():
        assert restarted.holds("trades", writer, batch_id)
        assert not restarted.holds("trades", writer, batch_id + 1)
