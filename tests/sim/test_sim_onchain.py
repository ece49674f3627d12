"""The on-chain process of the sim: the large-day preset's transfers and labels, the wallets' tendency to
sell after an exchange inflow, and scenario checks."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pydantic import ValidationError

from coattail.backtest.signals import engine_tables, signals_config
from coattail.reference import from_tape, run_reference
from coattail.run.progress import Steps
from coattail.validate.labels import validate_labels
from core.errors import ConfigError
from core.tape import Tape
from core.timefmt import parse_duration, parse_time
from pipeline.config import Config, ConfigLoader
from sim.generator import GenerateSpec, generate
from sim.onchain import BLOCK_US, whale_address
from sim.scenario import Scenario, load_scenario

START = parse_time("2026-01-01T00:00Z", "--start")
MODULES = ["MOD-001", "MOD-002", "MOD-003", "MOD-004", "MOD-010"]


def _config() -> Config:
    return ConfigLoader().load("small", env={}, overrides={"modules": MODULES})


def _tape(out: Path, scenario: Scenario, *, exchanges: tuple[str, ...] = ("binance", "coinbase")) -> Tape:
    spec = GenerateSpec(scenario, ("BTCUSDT", "ETHUSDT"), exchanges, START, parse_duration("2h"), 7, 0.02)
    generate(spec, _config(), out)
    return Tape.open(out)


def test_large_day_transfers_are_labelled_and_every_label_is_hit(tmp_path: Path) -> None:
    config = _config()
    tape = _tape(tmp_path / "t", load_scenario("large-day"))
    tape.verify()
    transfers = tape.read("transfer").to_pylist()
    assert tape.manifest.kinds == ["trade", "quote", "transfer"] and len(transfers) > 100
    assert all(t["ts_event"] % BLOCK_US == 0 and t["ts_recv"] > t["ts_event"] for t in transfers)
    ours = [lb for lb in tape.manifest.labels if lb.detector == "MOD-010"]
    expected = {"exchange_inflow": 5, "exchange_outflow": 1, "whale_transfer": 1}
    assert Counter(lb.kind for lb in ours) == expected
    outputs = run_reference(from_tape(tape), config)
    result = validate_labels(tape.manifest.labels, outputs, dq_window_seconds=60)
    missed = [r.label for r in result.results if not r.hit and r.label["detector"] == "MOD-010"]
    assert missed == []
    assert not [a for a in result.unexpected if a["detector"] == "MOD-010"]


def _flows(tendency: float) -> Scenario:
    return Scenario.model_validate({
        "name": "flows",
        "events": [{"kind": "exchange_inflow", "at": at, "instrument": 0, "multiple": 2.0, "wallet": "w"}
                   for at in (0.1, 0.4, 0.7)],
        "onchain": {"transfers_per_hour": 10, "wallets": [
            {"name": "w", "sell_after_inflow": tendency, "lag_minutes": 4, "drop_pct": 3.0}]},
    })


@pytest.mark.parametrize(("tendency", "crashes"), [(1.0, 3), (0.0, 0)])
def test_an_inflow_precedes_selling_as_often_as_its_wallet_says(
    tmp_path: Path, tendency: float, crashes: int
) -> None:
    tape = _tape(tmp_path / "t", _flows(tendency))
    inflows = sorted(lb.start_us for lb in tape.manifest.labels if lb.kind == "exchange_inflow")
    drops = sorted({lb.start_us for lb in tape.manifest.labels if lb.kind == "flash_crash"})
    assert len(inflows) == 3 and len(drops) == crashes
    for start, inflow in zip(drops, inflows, strict=False):
        # the inflow's minute plus 7 s, on the block grid; the sell-off starts 4 whole minutes later
        assert start == inflow - inflow % 60_000_000 + 4 * 60_000_000


def test_same_seed_same_transfers(tmp_path: Path) -> None:
    a = _tape(tmp_path / "a", _flows(0.5))
    b = _tape(tmp_path / "b", _flows(0.5))
    assert a.manifest.checksum == b.manifest.checksum


def test_scenario_and_tape_checks_say_what_to_change(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="need an `onchain:` section"):
        Scenario.model_validate({"name": "x", "events": [{"kind": "exchange_inflow", "at": 0.1}]})
    with pytest.raises(ValidationError, match="does not list"):
        events = [{"kind": "exchange_inflow", "at": 0.1, "wallet": "z"}]
        Scenario.model_validate({"name": "x", "events": events, "onchain": {}})
    with pytest.raises(ConfigError, match="binance:BTCUSDT"):
        _tape(tmp_path / "t", _flows(0.0), exchanges=("coinbase",))


def test_stablecoin_flows_are_labelled_and_scored_on_their_market(tmp_path: Path) -> None:
    """USDT exchange inflows (config/tokens.yaml counts USDT for BTC) at 1 USD a coin: every label is
    hit, MOD-011 scores them on BTC as (MOD-010, wallet, USDT) pointing up, and the engine agrees with
    the reference; a coin that is no stablecoin is refused."""
    events = [{"kind": "exchange_inflow", "at": at, "instrument": 1, "multiple": 2.0, "wallet": "w",
               "stablecoin": "USDT"} for at in (0.1, 0.3, 0.5, 0.7, 0.9)]
    scenario = Scenario.model_validate({"name": "stable", "events": events,
                                        "onchain": {"transfers_per_hour": 5, "wallets": [{"name": "w"}]}})
    tape = _tape(tmp_path / "t", scenario)
    usdt = [t for t in tape.read("transfer").to_pylist() if t["asset"] == "USDT"]
    assert len(usdt) == 5 and {t["amount"] for t in usdt} == {1e7}  # 2 x MOD-010's 5M USD threshold
    config = signals_config([tmp_path / "t"], {})
    reference = run_reference(from_tape(tape), config)
    result = validate_labels(tape.manifest.labels, reference, dq_window_seconds=60)
    assert [r.label for r in result.results if not r.hit and r.label["detector"] == "MOD-010"] == []
    scores = reference.alpha_scores.filter(pl.col("detector") == "MOD-010")
    assert set(scores["asset"]) == {"BTC"} and set(scores["symbol"]) == {"USDT"}
    assert set(scores["direction"]) == {1} and set(scores["exchange"]) == {whale_address("w")}
    engine = engine_tables([tmp_path / "t"], config, Steps())
    assert_frame_equal(reference.alpha_scores.sort("alert_id", "horizon_s"),
                       engine["alpha_scores"].sort("alert_id", "horizon_s"), check_exact=False)
    with pytest.raises(ConfigError, match="not among the stablecoins"):
        _tape(tmp_path / "x", scenario.model_copy(update={"events": (
            scenario.events[0].model_copy(update={"stablecoin": "BTC"}),)}))
