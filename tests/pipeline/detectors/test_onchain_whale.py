"""MOD-010 onchain-whale: a hand-computed case, and the property that any interleaving of transfers and
trades across shards, any micro-batch split, a restart after every batch and the state-store mode give
the same alerts and counts, which are the reference's (docs/DETECTORS.md, MOD-010)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from coattail.reference import from_wire, run_reference
from core.events import transfer_id
from pipeline.arrow_ipc import from_ipc
from pipeline.config import Config
from pipeline.detectors.registry import ModuleRegistry
from pipeline.engine import BatchResult
from pipeline.jobs.reprocessor import run_key
from pipeline.keyed import KeyedStep
from pipeline.onchain import route_transfers
from pipeline.runner import PipelineRunner
from pipeline.tables import schemas_of
from pipeline.testkit import T0, Item, alerts_of, dq_sums, payloads, run_engine, small_config, trade, transfer
from tests.pipeline.strategies import EXCHANGE_WALLET, interleavings, onchain_streams
from tests.pipeline.test_keyed import batches, keyed_run

CFG = small_config(**{"modules": ["MOD-004", "MOD-010"], "settings.MOD-010.default_threshold_usd": 2_000})
SCHEMAS = schemas_of(PipelineRunner(CFG, checkpoint=Path("unused"), table_sinks=[], alert_sinks=[]).tables())
_STAMPS = ["ts_written", "ts_ingest"]


def _alerts(results: list[BatchResult]) -> list[dict[str, Any]]:
    frame = alerts_of(results)
    if frame.empty:
        return []
    frame = frame.drop(columns=["ts_ingest"]).astype(object)
    rows: list[dict[str, Any]] = frame.where(frame.notna(), None).to_dict("records")
    return rows  # missing values as None, so that missing == missing


def test_a_held_transfer_is_priced_as_of_its_block_time() -> None:
    items: list[Item] = [
        transfer(1, 0, "BTC", 50.0, T0 + 5_000_000, to_addr=EXCHANGE_WALLET, ts_recv=T0 + 9_000_000),
        trade(1, 60_000.0, 0.1, T0),
        trade(2, 61_000.0, 0.1, T0 + 4_000_000),
        trade(3, 62_000.0, 0.1, T0 + 6_000_000),  # takes the clock past the block time
        transfer(2, 0, "USDT", 6_000_000.0, T0 + 1, from_addr=EXCHANGE_WALLET),  # USDT: 5M threshold
        transfer(1, 0, "BTC", 50.0, T0 + 5_000_000, to_addr=EXCHANGE_WALLET),  # a duplicate
        transfer(3, 1, "SOL", 1e6, T0),  # SOLUSDT never trades: held to the end
        transfer(4, 0, "XYZ", 1e6, T0),  # no reference instrument
        transfer(5, 0, "BTC", 0.01, T0 + 1),  # priced (60,000) but below the threshold
    ]
    results = run_engine(CFG, items, cuts=[1, 3])
    alerts = {a["kind"]: a for a in _alerts(results)}
    assert set(alerts) == {"exchange_inflow", "exchange_outflow"}
    inflow = alerts["exchange_inflow"]
    evidence = json.loads(inflow["evidence"])
    assert (inflow["exchange"], inflow["symbol"], inflow["ts_event"]) == ("ethereum", "BTC", T0 + 5_000_000)
    # BTC threshold 1,000,000 (features.yaml): 3,050,000 is 3.05 times it, medium (>= 2, < 5)
    assert inflow["value"] == 50.0 * 61_000.0 and inflow["severity"] == "medium"
    assert evidence["price"] == 61_000.0 and evidence["price_instrument"] == "binance:BTCUSDT"
    labels = (evidence["to_label"], evidence["to_kind"], evidence["ts_recv"])
    assert labels == ("Binance", "exchange", T0 + 9_000_000)
    assert inflow["event_ids"] == [transfer_id("ethereum", f"0x{1:064x}", 0)]
    assert json.loads(alerts["exchange_outflow"]["evidence"])["price"] == 1.0
    counts = {(sym, reason): n for (_, sym, _, reason), n in dq_sums(results).items()}
    assert counts == {("BTC", "DUPLICATE_ID"): 1, ("XYZ", "NO_PRICE"): 1}


def test_a_transfer_far_behind_its_key_is_late() -> None:
    day = 86_400_000_000
    items: list[Item] = [trade(1, 100.0, 1.0, T0 + 2 * day), transfer(1, 0, "BTC", 1e6, T0)]
    results = run_engine(CFG, items)
    assert _alerts(results) == []
    assert {reason for (_, _, _, reason) in dq_sums(results)} == {"LATE_EVENT"}


def _reference(config: Config, items: list[Item]) -> tuple[list[dict[str, Any]], dict[Any, int]]:
    out = run_reference(from_wire(payloads(items)), config)
    alerts = out.alerts.to_pandas()
    alerts["event_ids"] = alerts["event_ids"].map(list)
    frame = alerts.drop(columns=_STAMPS).sort_values("alert_id").reset_index(drop=True).astype(object)
    rows = [] if alerts.empty else frame.where(frame.notna(), None).to_dict("records")
    dq = {(r["exchange"], r["symbol"], r["window_start"], r["reason"]): r["count"] for r in out.dq.to_dicts()}
    return rows, dq


@settings(max_examples=40)
@given(
    st.data(), onchain_streams(), st.lists(st.integers(min_value=1, max_value=40), max_size=4), st.randoms()
)
def test_any_interleaving_split_restart_or_keyed_mode_gives_the_reference_alerts(
    data: st.DataObject, streams: tuple[list[Item], list[Item]], cuts: list[int], rng: random.Random
) -> None:
    first = data.draw(interleavings(streams))
    second = data.draw(interleavings(streams))
    expected_alerts, expected_dq = _reference(CFG, first)
    for items in (first, second):
        results = run_engine(CFG, items, cuts)
        assert _alerts(results) == expected_alerts
        assert dq_sums(results) == expected_dq
    # the state-store mode: per key, rows in any order, state through its JSON document
    step = KeyedStep(CFG, ModuleRegistry().build(CFG))
    states: dict[tuple[str, str], bytes | None] = {}
    parts = batches(second, cuts)
    keyed = [keyed_run(step, parsed, i, states, rng, SCHEMAS) for i, parsed in enumerate(parts)]
    assert _alerts(keyed) == expected_alerts and dq_sums(keyed) == expected_dq
    # the reprocessor: each key's rows at once, from a fresh state
    assert _reprocessed(second) == (expected_alerts, expected_dq)


def _reprocessed(items: list[Item]) -> tuple[list[dict[str, Any]], dict[Any, int]]:
    """``pipeline.jobs.reprocessor.run_key`` over every key of ``items`` (keyed as the bronze rows are)."""
    if not items:
        return [], {}
    parsed = route_transfers(batches(items, [])[0], CFG.tokens, CFG.instruments)
    valid = parsed.filter(pc.is_null(parsed.column("reason")))
    tables: dict[str, list[pa.Table]] = {}
    for key in valid.group_by(["exchange", "symbol"]).aggregate([]).to_pylist():
        rows = valid.filter(pc.and_(pc.equal(valid.column("exchange"), key["exchange"]),
                                    pc.equal(valid.column("symbol"), key["symbol"])))
        out = run_key(rows, CFG, CFG.modules)
        names, payloads = out.column("table").to_pylist(), out.column("payload").to_pylist()
        for name, payload in zip(names, payloads, strict=True):
            if name in ("alerts", "dq_metrics"):
                tables.setdefault(name, []).append(from_ipc(payload))
    result = BatchResult(0, 0, 0, 0, {
        name: pa.concat_tables(parts) if parts else SCHEMAS[name].empty_table()
        for name, parts in ((n, tables.get(n, [])) for n in ("alerts", "dq_metrics"))
    })
    return _alerts([result]), dq_sums([result])  # the streams hold no bad record: bronze is everything


def test_state_survives_a_restart_after_every_batch(tmp_path: Path) -> None:
    items: list[Item] = [
        transfer(1, 0, "BTC", 50.0, T0 + 5_000_000),
        trade(1, 60_000.0, 0.1, T0),
        transfer(1, 0, "BTC", 50.0, T0 + 5_000_000),
        trade(2, 62_000.0, 0.1, T0 + 6_000_000),
    ]
    cuts = [1, 2, 3]
    restarted = run_engine(CFG, items, cuts, state_dir=tmp_path / "state")
    assert _alerts(restarted) == _alerts(run_engine(CFG, items)) != []
    assert dq_sums(restarted) == dq_sums(run_engine(CFG, items))


def test_records_in_equals_valid_plus_quarantined_with_transfers() -> None:
    bad = transfer(9, 0, "BTC", -1.0, T0)
    results = run_engine(CFG, [bad, trade(1, 100.0, 1.0, T0), transfer(1, 0, "BTC", 1.0, T0)])
    assert [(r.records_in, r.valid, r.quarantined) for r in results] == [(3, 2, 1)]
    quarantine = pd.concat([r.tables["quarantine"].to_pandas() for r in results])
    assert quarantine["reason"].tolist() == ["NON_POSITIVE_SIZE"]
