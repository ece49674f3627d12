"""MOD-011's ground truth on the ``alpha-day`` preset: informed BTC whales (the price drifts 20 bps their
way) and uninformed ETH whales. Over seeds: the informed source's score converges to the planted edge
within its standard error, the uninformed one is rarely followed, and following the signals makes money
after fees where random entries at the same times and sizes do not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from coattail.backtest.engine import BacktestParams, Venue, random_directions, run_backtest
from coattail.backtest.market import load_markets
from coattail.backtest.signals import engine_tables, signals_config
from coattail.reference import from_tape, run_reference
from coattail.run.progress import Steps
from core.tape import Tape
from core.timefmt import parse_duration
from pipeline.config import ConfigLoader
from sim.generator import GenerateSpec, generate
from sim.onchain import whale_address
from sim.scenario import Scenario, load_scenario

START = 1_767_225_600_000_000
SEEDS = (1, 2, 3, 4, 5, 6)
EDGE_BPS = 20.0
FALSE_POSITIVE = 0.2
"""The share of an edgeless source's observations that may become follow signals (chance streaks) when
MOD-011 has no ``false_positive_rate``."""


def day(tmp: Path, seed: int) -> dict[str, pl.DataFrame]:
    spec = GenerateSpec(load_scenario("alpha-day"), ("BTCUSDT", "ETHUSDT"), ("binance",), START,
                        parse_duration("6h"), seed, 0.02)
    config = ConfigLoader().load("small", env={})
    generate(spec, config, tmp / f"t{seed}")
    tapes = [tmp / f"t{seed}"]
    tables = engine_tables(tapes, signals_config(tapes, {}), Steps())
    registry = config.instruments
    markets = load_markets(tapes, [registry.reference["BTC"], registry.reference["ETH"]])
    venues = {}
    for asset in ("BTC", "ETH"):
        inst = registry.hyperliquid(asset)
        assert inst is not None
        venues[asset] = Venue(inst, markets[registry.reference[asset]])
    params = BacktestParams(seed=seed)
    signals = tables["signals"]
    tables["follow"] = pl.DataFrame([run_backtest(signals, venues, params).summary["pnl_usd"]])
    tables["random"] = pl.DataFrame([run_backtest(random_directions(signals, seed), venues, params)
                                     .summary["pnl_usd"]])
    return tables


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, pl.DataFrame]]:
    root = tmp_path_factory.mktemp("alpha")
    return [day(root, seed) for seed in SEEDS]


def whales(scores: pl.DataFrame, symbol: str) -> pl.DataFrame:
    return scores.filter((pl.col("detector") == "MOD-001") & (pl.col("symbol") == symbol)
                         & (pl.col("horizon_s") == 300)).sort("ts_event")


def test_the_informed_source_converges_to_the_planted_edge(days: list[dict[str, pl.DataFrame]]) -> None:
    for tables in days:
        final = whales(tables["alpha_scores"], "BTCUSDT").row(-1, named=True)
        assert final["count"] >= 25
        standard_error = final["std_bps"] / final["count"] ** 0.5
        assert abs(final["mean_bps"] - EDGE_BPS) <= 3 * standard_error


def test_the_uninformed_source_stays_within_the_false_positive_rate(
    days: list[dict[str, pl.DataFrame]]
) -> None:
    followed = observed = 0
    for tables in days:
        signals = tables["signals"].filter(pl.col("detector") == "MOD-001")
        followed += signals.filter(pl.col("symbol") == "ETHUSDT").height
        observed += whales(tables["alpha_scores"], "ETHUSDT").height
        informed = signals.filter(pl.col("symbol") == "BTCUSDT").height
        assert informed >= 10  # the edge is followed once it has 10 observations
    assert followed / observed <= FALSE_POSITIVE


RATE = 0.05
FP_SEEDS = range(101, 117)


def reference_signals(tmp: Path, seed: int, rate: float | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """alpha-day (6 h) through the Polars reference with MOD-011's ``false_positive_rate`` at ``rate``:
    its MOD-001 signals and its MOD-001 scores at the signal horizon (one row per observation)."""
    out = tmp / f"fp{seed}"
    if not out.exists():
        spec = GenerateSpec(load_scenario("alpha-day"), ("BTCUSDT", "ETHUSDT"), ("binance",), START,
                            parse_duration("6h"), seed, 0.02)
        generate(spec, ConfigLoader().load("small", env={}), out)
    config = signals_config([out], {"settings.MOD-011.false_positive_rate": rate})
    outputs = run_reference(from_tape(Tape.open(out)), config)
    return outputs.signals.filter(pl.col("detector") == "MOD-001"), whales(outputs.alpha_scores, "ETHUSDT")


def test_no_edge_sources_stay_within_the_configured_false_positive_rate(tmp_path: Path) -> None:
    """Over 16 seeds the uninformed ETH whales (no edge) are followed on at most ``false_positive_rate``
    of their observations, while the informed BTC whales are followed on every seed; the bound only
    ever removes signals, and here it removes some (it binds)."""
    followed = observed = unbounded = 0
    for seed in FP_SEEDS:
        bounded, scored = reference_signals(tmp_path, seed, RATE)
        free, _ = reference_signals(tmp_path, seed, None)
        assert set(bounded["alert_id"]) <= set(free["alert_id"])
        assert bounded.filter(pl.col("symbol") == "BTCUSDT").height >= 10
        followed += bounded.filter(pl.col("symbol") == "ETHUSDT").height
        unbounded += free.filter(pl.col("symbol") == "ETHUSDT").height
        observed += scored.height
    assert observed >= 25 * len(FP_SEEDS)
    assert followed / observed <= RATE < unbounded / observed


def test_the_edge_pays_after_fees_and_random_entries_do_not(days: list[dict[str, pl.DataFrame]]) -> None:
    follow = np.mean([t["follow"].item() for t in days])
    chance = np.mean([t["random"].item() for t in days])
    assert follow > 0 > chance


def wallets_day(tmp: Path, seed: int) -> Path:
    """large-day's two whale wallets, 16 exchange inflows each over 6 h: whale-a's precede a 2 % drop
    (lag 2 min, so the 300 s signal horizon sees it) 80 % of the time, whale-b's nothing; whale-b's come
    after whale-a's sell-off has recovered."""
    events = [
        {"kind": "exchange_inflow", "at": (i + offset) / 16, "instrument": 0, "multiple": 2.0, "wallet": w}
        for i in range(16) for w, offset in (("whale-a", 0.05), ("whale-b", 0.8))
    ]
    scenario = Scenario.model_validate({"name": "wallets", "events": events, "onchain": {
        "transfers_per_hour": 20, "wallets": [
            {"name": "whale-a", "sell_after_inflow": 0.8, "lag_minutes": 2, "drop_pct": 2.0},
            {"name": "whale-b", "sell_after_inflow": 0.0}]}})
    spec = GenerateSpec(scenario, ("BTCUSDT",), ("binance",), START, parse_duration("6h"), seed, 0.02)
    generate(spec, ConfigLoader().load("small", env={}), tmp / f"w{seed}")
    return tmp / f"w{seed}"


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_wallet_whose_inflows_precede_a_drop_is_scored_and_followed(tmp_path: Path, seed: int) -> None:
    """Issue 17's wallet edge, through MOD-010 into MOD-011 (the backtest's in-process engine): at the
    signal horizon whale-a's source (MOD-010, its wallet, BTC) has a significantly positive mean and is
    followed; whale-b's has no significant positive mean and is rarely followed."""
    tapes = [wallets_day(tmp_path, seed)]
    config = signals_config(tapes, {})
    tables = engine_tables(tapes, config, Steps())
    scores = tables["alpha_scores"].filter((pl.col("detector") == "MOD-010") & (pl.col("horizon_s") == 300))
    final = {}
    for name in ("whale-a", "whale-b"):
        mine = scores.filter(pl.col("exchange") == whale_address(name)).sort("decision_ts")
        final[name] = mine.row(-1, named=True)
    assert final["whale-a"]["count"] == final["whale-b"]["count"] == 16
    assert final["whale-a"]["mean_bps"] > 50.0 and final["whale-a"]["t_stat"] > 3.0
    assert final["whale-b"]["t_stat"] < 2.0
    followed = tables["signals"].group_by("exchange").len()
    counts = dict(zip(followed["exchange"], followed["len"], strict=True))
    assert counts.get(whale_address("whale-a"), 0) > 0
    assert counts.get(whale_address("whale-b"), 0) <= FALSE_POSITIVE * 16
    if seed == 1:  # the reference agrees
        reference = run_reference(from_tape(Tape.open(tapes[0])), config)
        assert_frame_equal(reference.alpha_scores.sort("alert_id", "horizon_s"),
                           tables["alpha_scores"].sort("alert_id", "horizon_s"), check_exact=False)
