"""The large tier's market scenario kinds (whales with and without follow-through, momentum bursts with
and without a whale before them) as large-day plants them: the rows do what the labels say, and the
reference hits every label with no false positive."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from coattail.reference import from_tape, run_reference
from coattail.validate.labels import validate_labels
from core.tape import Tape
from core.timefmt import parse_duration, parse_time
from pipeline.config import ConfigLoader
from pipeline.detectors.whale_impact import WhaleImpactSettings
from sim.generator import GenerateSpec, generate
from sim.inject import Interval, steer
from sim.scenario import load_scenario


def test_large_day_plants_each_market_pattern_and_the_reference_hits_every_label(tmp_path: Path) -> None:
    large = ConfigLoader().load("large")
    spec = GenerateSpec(
        load_scenario("large-day"),
        ("BTCUSDT", "ETHUSDT", "SOLUSDT"),
        ("binance", "coinbase"),
        parse_time("2026-01-01T00:00Z", "--start"),
        parse_duration("1h"),
        7,
        0.25,
    )
    generate(spec, large, tmp_path / "t")
    tape = Tape.open(tmp_path / "t")
    labels = tape.manifest.labels
    asked = [(lb.kind, lb.detector) for lb in labels if lb.expect == "alert"]
    assert asked.count(("whale_impact", "MOD-008")) == 3 and asked.count(("momentum_burst", "MOD-009")) == 3
    (flat,) = [lb for lb in labels if lb.kind == "whale_no_impact"]
    trades = pl.DataFrame(tape.read("trade"))
    last = max(large.settings_of(WhaleImpactSettings).horizons_s) * 1_000_000
    held = trades.filter(
        (pl.col("exchange") == flat.exchange)
        & (pl.col("symbol") == flat.symbol)
        & pl.col("ts_event").is_between(flat.start_us - last // 5, flat.end_us)
    ).get_column("price")
    # the price stays flat until the last horizon: only the spread between bid and ask prints is left
    assert (float(held.max()) - float(held.min())) / float(held.min()) * 1e4 < 5  # type: ignore[arg-type]
    participants = large.model_copy(update={"active_instruments": tuple(sorted(tape.instruments()))})
    outcome = validate_labels(labels, run_reference(from_tape(tape), participants), dq_window_seconds=60)
    assert outcome.ok, [r.detail for r in outcome.misses]
    scores = {s.detector: s for s in outcome.scores}
    for module in ("MOD-008", "MOD-009"):
        assert (scores[module].recall, scores[module].precision) == (1.0, 1.0), scores[module]
    assert not outcome.unexpected


def test_moves_and_holds_steer_the_path_the_same_however_it_is_cut_into_chunks() -> None:
    grid = np.arange(0, 100, dtype=np.int64) * 10
    steps = np.random.default_rng(1).normal(0, 1e-4, size=grid.size)
    moves, holds = [Interval(105, 505, 0, 40.0)], [Interval(600, 800, 1)]
    whole = steer(steps, grid, 10, moves, holds)
    parts = np.concatenate(
        [steer(steps[:37], grid[:37], 10, moves, holds), steer(steps[37:], grid[37:], 10, moves, holds)]
    )
    assert np.array_equal(whole, parts)
    assert abs(np.sum((whole - steps)[(grid >= 105) & (grid < 505)]) - 40.0 / 1e4) < 1e-12
    assert not whole[(grid >= 600) & (grid < 800)].any()
