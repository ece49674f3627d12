"""The golden files of the fixture tapes against the reference implementation (fast, no Spark).

The e2e tests compare the pipeline with the same files; together: pipeline = reference = golden.
"""

from __future__ import annotations

from pathlib import Path

from coattail.run.judge import reference_outputs
from coattail.validate import compare_golden
from pipeline.config import ConfigLoader
from replay.faults import load_fault_spec
from replay.readers.importer import import_files
from tests.conftest import REAL_TAPES

GOLDEN = Path(__file__).resolve().parents[3] / "fixtures" / "golden"


def test_whale_day_fixture_matches_its_golden_file(tmp_path: Path) -> None:
    from sim.generator import GenerateSpec, generate
    from sim.scenario import load_scenario

    config = ConfigLoader().load("small", env={})
    tape = tmp_path / "whale-day-30m"
    generate(
        GenerateSpec(
            scenario=load_scenario("whale-day"),
            symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"),
            exchanges=("binance", "coinbase"),
            start_us=1_767_225_600_000_000,
            duration_us=30 * 60 * 1_000_000,
            seed=7,
            scale=0.1,
        ),
        config,
        tape,
    )
    spec = load_fault_spec(GOLDEN / "whale-day-30m.faults.yaml")
    outputs, _ = reference_outputs([tape], config, spec, None)
    result = compare_golden(GOLDEN / "whale-day-30m.json", outputs.alert_rows())
    assert result.ok, result.to_dict()
    assert result.expected > 0


def test_real_tardis_sample_matches_its_golden_file(tmp_path: Path) -> None:
    tape = tmp_path / "tardis"
    import_files(
        [REAL_TAPES / "tardis" / "tardis_trades.csv", REAL_TAPES / "tardis" / "tardis_quotes.csv"], tape
    )
    config = ConfigLoader().load(
        "small", env={}, overrides={"settings.MOD-001.thresholds_usd": {"BTCUSDT": 100_000}}
    )
    outputs, _ = reference_outputs([tape], config, None, None)
    result = compare_golden(GOLDEN / "tardis-btcusdt-100k.json", outputs.alert_rows())
    assert result.ok, result.to_dict()
    assert result.expected > 0
