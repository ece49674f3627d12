"""MOD-011 alpha scoring: hand-checked forward returns and scores, the direction of each module's alerts,
no look-ahead (a tape cut at X gives the full run's scores and signals up to X), any micro-batch split
and a restart give the same rows, and an edge source is scored near its planted edge while a source
without one is not followed."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coattail.reference import from_wire, run_reference
from coattail.run.outputs import DQ_COLUMNS, SPREAD_COLUMNS, RunOutputs
from coattail.validate.agreement import compare_with_reference
from pipeline.detectors.alpha_scoring import AlphaSettings, score
from pipeline.detectors.directions import Stance, direction_of
from pipeline.engine import BatchResult
from pipeline.testkit import Item, payloads, run_engine, trade
from tests.pipeline.detectors.alpha_kit import INFORMED, SEC, T0, UNINFORMED, config, planted, table


def test_score_uses_the_sample_standard_deviation() -> None:
    s = score([10.0, -2.0, 4.0])
    assert s["count"] == 3 and s["mean_bps"] == pytest.approx(4.0)
    assert s["std_bps"] == pytest.approx(6.0)  # sqrt((36 + 36 + 0) / 2)
    assert s["hit_rate"] == pytest.approx(2 / 3)
    assert s["t_stat"] == pytest.approx(4.0 / (6.0 / 3 ** 0.5))
    assert score([3.0])["std_bps"] is None and score([3.0, 3.0])["t_stat"] is None


def alert(detector: str, kind: str = "", value: float = 0.0, **evidence: Any) -> SimpleNamespace:
    return SimpleNamespace(detector=detector, kind=kind, value=value, evidence=json.dumps(evidence))


def test_each_module_alert_gives_its_direction() -> None:
    stance = Stance({"ETH": {"exchange_inflow": 1}}, frozenset({"USDT"}))
    assert direction_of(alert("MOD-001", side="sell"), stance).sign == -1
    assert direction_of(alert("MOD-007", side="buy"), stance).sign == 1
    assert direction_of(alert("MOD-006", direction="sell"), stance).sign == -1
    assert direction_of(alert("MOD-009", "momentum_burst", -12.0), stance).sign == -1
    assert direction_of(alert("MOD-009", "other", 12.0), stance).sign == 0
    def onchain(kind: str, asset: str = "BTC") -> SimpleNamespace:  # MOD-010's evidence keys
        return alert("MOD-010", kind, asset=asset, ts_recv=7, from_addr="0xfrom", to_addr="0xto")

    inflow = direction_of(onchain("exchange_inflow"), stance)
    assert (inflow.sign, inflow.decision_ts, inflow.source) == (-1, 7, "0xfrom")
    outflow = direction_of(onchain("exchange_outflow"), stance)
    assert (outflow.sign, outflow.source) == (1, "0xto")  # the whale receives an outflow
    assert direction_of(onchain("exchange_inflow", "USDT"), stance).sign == 1
    assert direction_of(onchain("exchange_inflow", "ETH"), stance).sign == 1  # configured
    assert direction_of(onchain("whale_transfer"), stance).sign == 0
    assert direction_of(alert("MOD-002"), stance).sign == 0


def test_settings_refuse_a_signal_horizon_that_is_not_scored() -> None:
    with pytest.raises(ValueError, match="signal_horizon_s"):
        AlphaSettings(horizons_s=(60,), signal_horizon_s=300)


def test_forward_returns_follow_the_price_as_of_rule() -> None:
    """Hand-made: a buy whale at T0+1 s at 50,000, the price 50,100 from T0+5 s, 49,900 from T0+20 s."""
    items: list[Item] = [trade(1, 50_000.0, 0.01, T0)]
    items.append(trade(2, 50_000.0, 30.0, T0 + SEC, side="buy"))
    items += [trade(3 + i, 50_100.0, 0.01, T0 + (5 + i) * SEC) for i in range(15)]
    items += [trade(20 + i, 49_900.0, 0.01, T0 + (20 + i) * SEC) for i in range(20)]
    scores = table(run_engine(config(), items), "alpha_scores")
    assert scores["horizon_s"].tolist() == [10, 30]
    # t = T0 + 1 s, p(t) = 50,000 (the whale itself arrived before the clock passed t)
    assert scores["forward_bps"].tolist() == pytest.approx([20.0, -20.0])
    assert scores["ts_event"].tolist() == [T0 + 11 * SEC, T0 + 31 * SEC]
    assert scores["count"].tolist() == [1, 1]


@pytest.fixture(scope="module")
def edge_run() -> tuple[list[Item], list[BatchResult]]:
    items = planted(1, edge_bps=20.0)
    return items, run_engine(config(), items)


def test_an_edge_source_converges_and_is_followed(edge_run: tuple[list[Item], list[BatchResult]]) -> None:
    _items, results = edge_run
    scores = table(results, "alpha_scores")
    whales = scores[(scores["horizon_s"] == 30) & (scores["detector"] == "MOD-001")]
    final = whales.sort_values("ts_event").iloc[-1]
    # the planted 20 bps, within a few standard errors of the +-1 bps noise over 30 s
    assert abs(final["mean_bps"] - 20.0) <= 3 * final["std_bps"] / final["count"] ** 0.5 + 1.0
    signals = table(results, "signals")
    # the whales are followed; MOD-006's windows close after the drift, so that source has no edge
    assert (signals["detector"] == "MOD-001").sum() >= 25
    assert (signals["detector"] == "MOD-006").sum() <= 5
    alerts = pd.concat([r.alerts.to_pandas() for r in results])
    follow = alerts[alerts["kind"] == "follow_signal"]
    assert set(follow["alert_id"]) == set(signals["alert_id"])
    assert (signals["mean_bps"] >= 5.0).all() and (signals["count"] >= 3).all()


def test_a_source_without_edge_is_rarely_followed() -> None:
    followed = [len(table(run_engine(config(), planted(seed, edge_bps=0.0)), "signals")) for seed in range(4)]
    # a few chance streaks may pass the bounds; an edge source is followed at nearly every whale
    assert sum(followed) / (4 * 40) < 0.25


def test_a_tape_cut_at_x_gives_the_same_rows_up_to_x(edge_run: tuple[list[Item], list[BatchResult]]) -> None:
    items, results = edge_run
    x = T0 + 1000 * SEC
    cut = [i for i in items if not isinstance(i, bytes) and i[1]["ts_event"] <= x]
    short = run_engine(config(), cut)
    for name, time in (("signals", "ts_event"), ("alpha_scores", "ts_event")):
        full, part = table(results, name), table(short, name)
        # rows the cut run has are the full run's; up to X minus the heartbeat it has all of them
        assert len(part) and part.merge(full, how="left", indicator=True)["_merge"].eq("both").all()
        before = full[full[time] < x - 2 * SEC].reset_index(drop=True)
        pd.testing.assert_frame_equal(part[part[time] < x - 2 * SEC].reset_index(drop=True), before)


@settings(max_examples=8)
@given(cuts=st.lists(st.integers(1, 2200), max_size=5))
def test_any_split_and_a_restart_give_the_same_rows(
    cuts: list[int], edge_run: tuple[list[Item], list[BatchResult]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    items, results = edge_run
    split = run_engine(config(), items, cuts=cuts, state_dir=Path(tmp_path_factory.mktemp("state")))
    for name in ("signals", "alpha_scores"):
        pd.testing.assert_frame_equal(table(split, name), table(results, name))


SPREAD = pl.DataFrame(schema=SPREAD_COLUMNS)


def outputs(results: list[BatchResult]) -> RunOutputs:
    alerts = pa.concat_tables([r.alerts for r in results])
    return RunOutputs(alerts=alerts, dq=pl.DataFrame(schema=DQ_COLUMNS), spread_metrics=SPREAD.clear(),
                      records_in=0, valid=0, alpha_scores=pl.from_pandas(table(results, "alpha_scores")),
                      signals=pl.from_pandas(table(results, "signals")))


def assert_agrees(pipeline: RunOutputs, reference: RunOutputs) -> None:
    """Alerts, alpha scores and signals equal the reference's."""
    ref = RunOutputs(alerts=reference.alerts, dq=pipeline.dq, spread_metrics=SPREAD.clear(), records_in=0,
                     valid=0, alpha_scores=reference.alpha_scores, signals=reference.signals)
    agreement = compare_with_reference(pipeline, ref)
    assert agreement.alpha_differences == [] and agreement.signal_differences == []
    assert agreement.only_pipeline == [] and agreement.only_reference == []
    assert agreement.alert_differences == []


@pytest.mark.parametrize("seed", [11, 12])
def test_the_reference_agrees_with_sliced_runs_flow_windows_and_a_second_venue(seed: int) -> None:
    """Every consumed module fires (MOD-007 runs of two same-side trades, MOD-006 windows at 0.3), and
    a coinbase leg joins BTC's participants, so the release rule holds items back until both move on."""
    cfg = config(**{
        "instruments": ["binance:BTCUSDT", "coinbase:BTC-USD"], "settings.MOD-007.min_trades": 2,
        "settings.MOD-007.threshold_fraction": 0.04, "settings.MOD-006.threshold": 0.3,
        "settings.MOD-006.min_notional_usd": 100_000.0,
    })
    items = planted(seed, edge_bps=20.0, whales=30)
    other: list[Item] = [
        trade(i + 1, 50_000.0, 0.1, T0 + i * 7 * SEC + 3, exchange="coinbase", symbol="BTC-USD")
        for i in range(200)
    ]
    merged = sorted(items + other, key=lambda i: i[1]["ts_event"] if not isinstance(i, bytes) else 0)
    pipeline = outputs(run_engine(cfg, merged, cuts=[500, 1700]))
    reference = run_reference(from_wire(payloads(merged)), cfg)
    assert {"MOD-001", "MOD-006", "MOD-007", "MOD-011"} <= set(pipeline.alerts["detector"].to_pylist())
    assert pipeline.signals.height > 0
    assert_agrees(pipeline, reference)


@pytest.mark.parametrize("seed", [21, 22])
def test_mod010_wallets_are_scored_by_their_receive_time_and_the_reference_agrees(seed: int) -> None:
    """Exchange inflows of two wallets (issue 17's wallet edge): MOD-010's alerts reach BTC's group
    (their key is (ethereum, BTC), produced on binance:BTCUSDT), each observed at its transfer's
    ``ts_recv`` under the source (MOD-010, wallet, BTC); the informed wallet scores its planted edge and
    is followed, the other is not, and any micro-batch split gives the reference's rows."""
    items = planted(seed, edge_bps=20.0, whales=40, inflows=True)
    cfg = config()
    pipeline = outputs(run_engine(cfg, items, cuts=[300, 1100]))
    reference = run_reference(from_wire(payloads(items)), cfg)
    assert_agrees(pipeline, reference)
    scores = pipeline.alpha_scores.filter(pl.col("detector") == "MOD-010")
    assert set(scores["symbol"]) == {"BTC"} and set(scores["exchange"]) == {INFORMED, UNINFORMED}
    evidence = [json.loads(r["evidence"]) for r in pipeline.alerts.to_pylist() if r["detector"] == "MOD-010"]
    recv = {e["tx_hash"]: e["ts_recv"] for e in evidence}
    assert len(recv) == 39  # the first inflow precedes every trade: no price, no alert
    assert set(scores["decision_ts"]) <= set(recv.values())
    final = scores.filter(pl.col("horizon_s") == 30).sort("decision_ts").group_by(
        "exchange", maintain_order=True).last()
    mean = dict(zip(final["exchange"], final["mean_bps"], strict=True))
    assert mean[INFORMED] > 10.0 and abs(mean[UNINFORMED]) < 5.0
    followed = set(pipeline.signals.filter(pl.col("detector") == "MOD-010")["exchange"])
    assert followed == {INFORMED}


@pytest.mark.parametrize("seed", [31, 32])
def test_stablecoin_inflows_count_for_their_market_and_the_reference_agrees(seed: int) -> None:
    """USDT exchange inflows (config/tokens.yaml counts USDT for BTC): MOD-010 alerts every one at 1 USD
    at its own arrival, keyed under binance:BTCUSDT, so they join BTC's group with its clock; the source
    is (MOD-010, wallet, USDT) and an inflow points up (+1). The informed wallet, after whose inflows the
    price drifts up, scores its edge and is followed; any micro-batch split gives the reference's rows."""
    items = planted(seed, edge_bps=20.0, whales=40, inflows=True, stable=True)
    cfg = config()
    pipeline = outputs(run_engine(cfg, items, cuts=[1, 300, 1100]))
    reference = run_reference(from_wire(payloads(items)), cfg)
    assert_agrees(pipeline, reference)
    onchain = [r for r in pipeline.alerts.to_pylist() if r["detector"] == "MOD-010"]
    assert len(onchain) == 40 and {json.loads(r["evidence"])["price"] for r in onchain} == {1.0}
    scores = pipeline.alpha_scores.filter(pl.col("detector") == "MOD-010")
    assert set(scores["asset"]) == {"BTC"} and set(scores["symbol"]) == {"USDT"}
    assert set(scores["direction"]) == {1}
    final = scores.filter(pl.col("horizon_s") == 30).sort("decision_ts").group_by(
        "exchange", maintain_order=True).last()
    mean = dict(zip(final["exchange"], final["mean_bps"], strict=True))
    assert mean[INFORMED] > 10.0 and abs(mean[UNINFORMED]) < 5.0
    assert set(pipeline.signals.filter(pl.col("detector") == "MOD-010")["exchange"]) == {INFORMED}


def test_a_stablecoin_without_a_market_reaches_no_group() -> None:
    """With no market configured for USDT its transfers stay under (ethereum, USDT): MOD-010 still
    alerts them, MOD-011 scores none of them."""
    cfg = config()
    cfg = cfg.model_copy(update={"tokens": cfg.tokens.model_copy(update={"stablecoin_markets": {}})})
    items = planted(31, edge_bps=20.0, whales=12, inflows=True, stable=True)
    pipeline = outputs(run_engine(cfg, items))
    assert "MOD-010" in pipeline.alerts["detector"].to_pylist()
    assert pipeline.alpha_scores.filter(pl.col("detector") == "MOD-010").height == 0
    assert_agrees(pipeline, run_reference(from_wire(payloads(items)), cfg))
