"""MOD-005 cross-exchange basis: hand-computed edges (carry, empty windows, the threshold, sign flips, one
alert per episode, stalls), configuration errors, and the property that any micro-batch split, any
interleaving of the two instruments, both keyed modes and the Polars reference give the same alerts,
``basis_metrics`` and ``BASIS_STALLED`` counts."""

from __future__ import annotations

import gzip
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coattail.reference import from_wire, run_reference
from core.errors import ConfigError
from core.events import EventKind
from pipeline.config import Config, ConfigLoader
from pipeline.connectors.binance import parse_binance_message
from pipeline.detectors.basis import STALLED, BasisDetector, basis_bps
from pipeline.detectors.registry import ModuleRegistry
from pipeline.engine import BatchResult, Engine
from pipeline.parse import parse_batch
from pipeline.testkit import Item, payloads, quote, raw_table, run_engine, trade
from tests.conftest import REAL_TAPES
from tests.pipeline.keyed_kit import run_state_store

T0 = 1_767_225_600_000_000  # 2026-01-01 00:00 UTC, a window boundary
SEC = 1_000_000
W = 10 * SEC
A = ("binance", "BTCUSDT")
B = ("coinbase", "BTC-USD")
PAIR = [f"{A[0]}:{A[1]}", f"{B[0]}:{B[1]}"]
WIDE = 50_000.0 * 1.004  # +39.92 bps against 50,000


def config(**overrides: Any) -> Config:
    """The small tier with MOD-005 alone on one pair (watermark 10 s)."""
    return ConfigLoader().load("small", env={}, overrides={
        "modules": ["MOD-005"], "instruments": PAIR, "settings.MOD-005.pairs": [PAIR], **overrides,
    })


def legs(prices_a: Sequence[float | None], prices_b: Sequence[float | None], tail: int = 3) -> list[Item]:
    """One trade per window and leg at the given price (``None``: the leg does not trade there), then
    ``tail`` windows of both legs at 50,000 so that every listed window closes; a after b each window."""
    items: list[Item] = []
    n = len(prices_a)
    for i in range(n + tail):
        for (ex, sym), prices, offset in ((B, prices_b, 1), (A, prices_a, 2)):
            price = prices[i] if i < n else 50_000.0
            if price is not None:
                items.append(trade(i + 1, price, 0.1, T0 + i * W + offset * SEC, exchange=ex, symbol=sym))
    return items


def outputs(results: list[BatchResult]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Any]]:
    """Alerts (sorted by id), basis rows (sorted by window) and stall rows of a run."""
    alerts = sorted((r for res in results for r in res.alerts.to_pylist()), key=lambda a: a["alert_id"])
    basis = sorted((r for res in results for r in res.tables["basis_metrics"].to_pylist()),
                   key=lambda r: (r["exchange_a"], r["exchange_b"], r["window_start"]))
    dq = [r for res in results for r in res.tables["dq_metrics"].to_pylist()]
    stalls = sorted((r["exchange"], r["symbol"], r["window_start"], r["count"])
                    for r in dq if r["reason"] == STALLED)
    for a in alerts:
        a["ts_written"] = None
    return alerts, basis, stalls


def windows(basis: list[dict[str, Any]]) -> list[int]:
    return [(r["window_start"] - T0) // W for r in basis]


def test_an_episode_fires_once_at_its_min_windows_th_window() -> None:
    items = legs([50_000.0] * 2 + [WIDE] * 5 + [50_000.0] * 2, [50_000.0] * 9)
    alerts, basis, stalls = outputs(run_engine(config(), items))
    # window 9 closes on a's last trade (clock 112 s), which b's clock (111 s) never passes
    assert windows(basis) == list(range(9))
    (alert,) = alerts
    assert alert["kind"] == "basis_divergence" and alert["exchange"] == "binance|coinbase"
    assert alert["symbol"] == "BTC" and alert["window_start"] == T0 + 2 * W
    assert alert["ts_event"] == alert["window_end"] == T0 + 5 * W  # the third window's end
    assert alert["value"] == pytest.approx(basis_bps(WIDE, 50_000.0)) and alert["severity"] == "low"
    assert not stalls


def test_exactly_at_the_threshold_fires_and_just_below_does_not() -> None:
    items = legs([WIDE] * 3, [50_000.0] * 3)
    exact = basis_bps(WIDE, 50_000.0)
    assert len(outputs(run_engine(config(**{"settings.MOD-005.threshold_bps": exact}), items))[0]) == 1
    above = exact * (1 + 1e-12)
    assert outputs(run_engine(config(**{"settings.MOD-005.threshold_bps": above}), items))[0] == []


def test_a_sign_flip_ends_the_episode_and_may_start_the_next() -> None:
    low = 50_000.0 / 1.004
    items = legs([WIDE, WIDE, low, low, low], [50_000.0] * 5)
    (alert,) = outputs(run_engine(config(), items))[0]
    assert alert["window_start"] == T0 + 2 * W and alert["value"] < 0


def test_severity_steps_at_two_and_four_times_the_threshold() -> None:
    for factor, level in ((1.0, "low"), (2.0, "medium"), (4.0, "high")):
        wide = 50_000.0 * (1 + factor * 0.0026)  # a little above factor x 25 bps
        (alert,) = outputs(run_engine(config(), legs([wide] * 3, [50_000.0] * 3)))[0]
        assert alert["severity"] == level


def test_a_price_is_carried_for_max_carry_windows_then_the_basis_stops() -> None:
    # b trades in window 0 only until window 12: windows 1..6 carry it, 7..11 have no basis
    items = legs([WIDE] * 12, [50_000.0] + [None] * 11, tail=4)
    _alerts, basis, _ = outputs(run_engine(config(), items))
    assert windows(basis)[:8] == [0, 1, 2, 3, 4, 5, 6, 12]
    assert [r["carried_b"] for r in basis[:8]] == [False] + [True] * 6 + [False]
    assert not any(r["carried_a"] for r in basis)


def test_no_basis_when_neither_leg_traded_and_that_ends_an_episode() -> None:
    flat = 50_000.0
    items = legs([WIDE, WIDE, None, WIDE, WIDE, WIDE], [flat, flat, None, flat, flat, flat])
    (alert,), basis, _ = outputs(run_engine(config(), items))
    assert 2 not in windows(basis)
    assert alert["window_start"] == T0 + 3 * W


def test_a_leg_silent_for_stall_seconds_counts_one_basis_stalled() -> None:
    # b silent from 1 s to 91 s: its trade at 91 s closes windows 0..7, which a closed from 22 s on;
    # counted once, at the first window it held back by 60 s or more (window 0: 91 - 22 = 69 s)
    items = legs([50_000.0] * 12, [50_000.0] + [None] * 8 + [50_000.0] * 3)
    _, _, stalls = outputs(run_engine(config(), items))
    assert stalls == [(B[0], B[1], T0, 1)]
    quiet = outputs(run_engine(config(**{"settings.MOD-005.stall_seconds": 120}), items))[2]
    assert quiet == []


def test_a_leg_that_only_quotes_lets_the_pair_move_on_without_a_backlog() -> None:
    items: list[Item] = []
    for i in range(40):
        items.append(trade(i + 1, 50_000.0, 0.1, T0 + i * W + SEC))
        items.append(quote(i + 1, 49_999.0, 50_001.0, T0 + i * W + 2 * SEC, exchange=B[0], symbol=B[1]))
    cfg = config()
    engine = Engine(cfg, ModuleRegistry().build(cfg))
    parsed = pa.Table.from_batches([parse_batch(raw_table(payloads(items)).to_batches()[0])])
    result = engine.process(parsed, 0)
    assert result.tables["basis_metrics"].num_rows == 0  # b never traded: no price, no basis
    pair = engine.state.cross["modules"]["MOD-005"]["groups"]["BTC"]["pairs"]["|".join(PAIR)]
    assert all(len(spans) <= 2 for spans in pair["rows"].values())  # evaluated windows leave the state


def test_pairs_are_of_one_asset_and_active_only_within_the_tier() -> None:
    basis = [d for d in ModuleRegistry().build(config(instruments=[PAIR[0]])) if d.module_id == "MOD-005"]
    assert isinstance(basis[0], BasisDetector) and basis[0].pairs == {}, "a pair with a leg outside: inactive"
    with pytest.raises(ConfigError, match=r"must be two instruments of one asset"):
        ModuleRegistry().build(config(**{"settings.MOD-005.pairs": [[PAIR[0], "coinbase:ETH-USD"]]},
                                      instruments=[PAIR[0], "coinbase:ETH-USD"]))


@st.composite
def two_legs(draw: st.DrawFn) -> list[Item]:
    """Two legs over up to 24 windows: each window a leg trades (at a price near or far from the other
    leg's) or stays silent, with quotes now and then; the legs interleave in any arrival order."""
    n = draw(st.integers(1, 24))
    per_leg: dict[str, list[Item]] = {}
    for ex, sym in (A, B):
        events: list[Item] = [quote(0, 49_999.0, 50_001.0, T0, exchange=ex, symbol=sym)]
        tid = 0
        for i in range(n):
            for _ in range(draw(st.integers(0, 2))):
                tid += 1
                price = draw(st.sampled_from([50_000.0, 50_000.0, WIDE, 50_000.0 / 1.004, 50_000.0 * 1.0011]))
                ts = T0 + i * W + draw(st.integers(0, 9)) * SEC
                events.append(trade(tid, price, 0.1, ts, exchange=ex, symbol=sym))
            if draw(st.booleans()):
                events.append(quote(i + 1, 49_999.0, 50_001.0, T0 + i * W + 5 * SEC, exchange=ex, symbol=sym))
        per_leg[ex] = events
    picks = draw(st.permutations([ex for ex, evs in per_leg.items() for _ in evs]))
    return [per_leg[ex].pop(0) for ex in picks]


def reference_outputs(cfg: Config, items: Sequence[Item]) -> tuple[list[Any], list[Any], list[Any]]:
    ref = run_reference(from_wire(payloads(items)), cfg)
    alerts = sorted(ref.alerts.to_pylist(), key=lambda a: a["alert_id"])
    stalls = ref.dq.filter(pl.col("reason") == STALLED).select("exchange", "symbol", "window_start", "count")
    return alerts, ref.basis_metrics.sort("exchange_a", "exchange_b", "window_start").to_dicts(), sorted(
        stalls.rows()
    )


def same(x: list[dict[str, Any]], y: list[dict[str, Any]]) -> bool:
    keys = ("alert_id", "window_start", "window_end", "ts_event", "severity", "evidence")
    return [{k: a.get(k) for k in keys} for a in x] == [{k: a.get(k) for k in keys} for a in y]


@settings(max_examples=40)
@given(items=two_legs(), cuts=st.lists(st.integers(1, 80), max_size=4), stall=st.sampled_from([20, 60]))
def test_any_split_interleaving_and_mode_give_the_reference(
    items: list[Item], cuts: list[int], stall: int
) -> None:
    cfg = config(**{"settings.MOD-005.stall_seconds": stall, "settings.MOD-005.max_carry_windows": 2})
    whole = outputs(run_engine(cfg, items))
    with tempfile.TemporaryDirectory() as tmp:
        split = outputs(run_engine(cfg, items, cuts, state_dir=Path(tmp) / "d"))
        keyed = outputs(run_state_store(cfg, items, cuts, Path(tmp) / "k", ModuleRegistry()))
    assert split == whole and keyed == whole
    ref_alerts, ref_basis, ref_stalls = reference_outputs(cfg, items)
    assert same(whole[0], ref_alerts)
    assert whole[1] == ref_basis
    assert whole[2] == ref_stalls


def real_spot_and_perp() -> list[tuple[EventKind, dict[str, Any]]]:
    """Binance spot and USD-M futures BTCUSDT captured over the same six minutes of 2024-08-08, merged
    in receive order (/work/shared/real-tapes/PROVENANCE.md)."""
    items: list[tuple[EventKind, dict[str, Any]]] = []
    for name in ("spot_btcusdt_20240808.gz", "usdm_btcusdt_20240808.gz"):
        with gzip.open(REAL_TAPES / "binance-ws" / name, "rt") as fh:
            for line in fh:
                ns, _, payload = line.partition(" ")
                items += parse_binance_message(json.loads(payload), int(ns) // 1_000)
    items.sort(key=lambda i: i[1]["ts_recv"])  # stable: each capture keeps its own order
    return items


def test_real_spot_and_perpetual_captures_agree_with_the_reference(tmp_path: Path) -> None:
    spot_perp = ["binance:BTCUSDT", "binance-futures:BTCUSDT"]
    # the real basis is 3 to 5 bps: a threshold inside that range makes episodes start and end; the two
    # feeds never close a window a second apart, so even a 1 s stall bound counts nothing
    cfg = config(instruments=spot_perp, **{
        "settings.MOD-005.pairs": [spot_perp], "settings.MOD-005.threshold_bps": 3.5,
        "settings.MOD-005.min_windows": 2, "settings.MOD-005.stall_seconds": 1,
    })
    items = real_spot_and_perp()
    kinds = {(i[1]["exchange"], i[0]) for i in items}
    assert kinds == {(ex, k) for ex in ("binance", "binance-futures") for k in ("trade", "quote")}
    whole = outputs(run_engine(cfg, items))
    alerts, basis, stalls = whole
    assert len(basis) > 30 and alerts and all(a["exchange"] == "binance|binance-futures" for a in alerts)
    assert stalls == []
    cuts = [len(items) // 7, len(items) // 2, len(items) - 1000]
    assert outputs(run_engine(cfg, items, cuts, state_dir=tmp_path / "d")) == whole
    assert outputs(run_state_store(cfg, items, cuts, tmp_path / "k", ModuleRegistry())) == whole
    ref_alerts, ref_basis, ref_stalls = reference_outputs(cfg, items)
    assert same(alerts, ref_alerts) and basis == ref_basis and stalls == ref_stalls
