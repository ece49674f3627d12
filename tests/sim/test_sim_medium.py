"""The medium tier's scenario kinds (sliced parent orders, one-sided minutes), its presets, and that the
older presets keep their bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest

from coattail.reference import from_tape, run_reference
from coattail.validate.labels import validate_labels
from core.errors import ConfigError
from core.tape import Tape
from core.timefmt import parse_duration, parse_time
from pipeline.config import Config, ConfigLoader
from pipeline.detectors.flow_imbalance import FlowImbalanceSettings
from pipeline.detectors.sliced_whale import SlicedWhaleSettings
from pipeline.detectors.whale import WhaleSettings
from sim.generator import GenerateSpec, generate
from sim.scenario import Scenario, load_scenario

START = parse_time("2026-01-01T00:00Z", "--start")

MAIN_HASHES = {
    "whale-day": "91256447fa91a0d99e822469f822f14e29acc801b042c1d3bc95baaf8547e34e",
    "flash-crash": "c820ed2fbaa9599811d771ffbcf32710893e3ea87a5237cd1adcd6c4c82266e5",
    "dirty-feed": "d2c78dfd04b5eb85bfbda3f0d4c53b92974da0e377e79246937c44664cc245c3",
    "quiet-day": "328c27f372ccd3ef1fad8a796e18f8df7eec167c7984f69e93750cf2d064d8fd",
}
"""sha256 over every file of the tape (path, then bytes, in path order) as main's generator (commit
cedbb29, before the medium kinds) wrote it for these arguments: BTCUSDT,SOLUSDT x binance,coinbase,
40m from 2026-01-01, seed 7, scale 0.05, small tier."""


def _tape(config: Config, out: Path, scenario: str | Scenario, duration: str = "40m") -> Tape:
    sc = load_scenario(scenario) if isinstance(scenario, str) else scenario
    spec = GenerateSpec(
        sc, ("BTCUSDT", "SOLUSDT"), ("binance", "coinbase"), START, parse_duration(duration), 7, 0.05
    )
    generate(spec, config, out)
    return Tape.open(out)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(p.relative_to(path)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("scenario", sorted(MAIN_HASHES))
def test_existing_presets_keep_their_bytes(config: Config, tmp_path: Path, scenario: str) -> None:
    _tape(config, tmp_path / "t", scenario)
    assert _digest(tmp_path / "t") == MAIN_HASHES[scenario]


def test_medium_day_plants_each_pattern_and_the_reference_hits_every_label(tmp_path: Path) -> None:
    medium = ConfigLoader().load("medium")
    tape = _tape(medium, tmp_path / "t", "medium-day", duration="45m")
    trades = pl.DataFrame(tape.read("trade")).with_columns(
        (pl.col("price") * pl.col("qty")).alias("usd"),
        pl.format("trade:{}:{}:{}", "exchange", "symbol", "trade_id").alias("event_id"),
    )
    whale = medium.settings_of(WhaleSettings)
    gap = medium.settings_of(SlicedWhaleSettings).max_gap_ms * 1_000
    flow = medium.settings_of(FlowImbalanceSettings)
    kinds = [lb.kind for lb in tape.manifest.labels]
    assert kinds.count("sliced_whale") == 2 and kinds.count("one_sided") == 2
    for label in tape.manifest.labels:
        mine = trades.filter((pl.col("exchange") == label.exchange) & (pl.col("symbol") == label.symbol))
        if label.kind == "sliced_whale":
            t1 = whale.threshold(label.symbol)
            run = mine.filter(pl.col("event_id").is_in(list(label.event_ids))).sort("ts_event")
            assert run.height >= 3 and run.get_column("side").n_unique() == 1
            assert run.get_column("usd").max() < t1 <= run.get_column("usd").sum()  # type: ignore[operator]
            times = run.get_column("ts_event")
            assert times.diff().drop_nulls().max() <= gap  # type: ignore[operator]
            # nothing else of the instrument within the gap: the run is exactly the slices
            near = mine.filter(
                (pl.col("ts_event") >= times.min() - gap)  # type: ignore[operator]
                & (pl.col("ts_event") <= times.max() + gap)  # type: ignore[operator]
            )
            assert near.height == run.height
        if label.kind == "one_sided":
            minute = mine.filter(pl.col("ts_event").is_between(label.start_us, label.end_us, closed="left"))
            buy = float(minute.filter(pl.col("side") == "buy").get_column("usd").sum())
            sell = float(minute.filter(pl.col("side") == "sell").get_column("usd").sum())
            assert buy + sell >= flow.min_notional_usd and abs(buy - sell) / (buy + sell) >= flow.threshold
    # as `coattail run` does: the tape's instruments are the participants (MOD-005's pairs need them)
    participants = medium.model_copy(update={"active_instruments": tuple(sorted(tape.instruments()))})
    outcome = validate_labels(
        tape.manifest.labels, run_reference(from_tape(tape), participants), dq_window_seconds=60
    )
    assert outcome.ok, [r.detail for r in outcome.misses]
    scores = {s.detector: s for s in outcome.scores}
    assert scores["MOD-005"].recall == scores["MOD-006"].recall == scores["MOD-007"].recall == 1.0


def test_a_slice_at_the_threshold_or_a_gap_beyond_mod007s_is_refused(config: Config, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="each must stay below"):
        load_scenario(_write(tmp_path, "{kind: sliced_whale, at: 0.5, multiple: 3.0, slices: 3}"))
    scenario = load_scenario(_write(tmp_path, "{kind: sliced_whale, at: 0.5, gap_ms: 1001, slices: 5}"))
    with pytest.raises(ConfigError, match="max_gap_ms"):
        _tape(config, tmp_path / "t", scenario)


def _write(tmp_path: Path, event: str) -> str:
    path = tmp_path / "scenario.yaml"
    path.write_text(f"name: x\nevents:\n  - {event}\n")
    return str(path)
