"""MOD-008 and MOD-009 over real captures (Tardis Binance futures, a Binance spot WebSocket day), the
engine in micro-batches against the independent reference: same alerts, same whale-impact rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from coattail.reference import from_tape, run_reference
from core.tape import Tape
from pipeline.config import ConfigLoader
from replay.readers.importer import import_files
from tests.pipeline.detectors.market_kit import MODULES
from tests.pipeline.detectors.test_flow_real_tapes import CAPTURES, tape_items
from tests.pipeline.detectors.test_volume_anomaly import same_alerts
from tests.pipeline.detectors.windowed_kit import run


@pytest.mark.parametrize("capture", sorted(CAPTURES))
def test_real_capture_through_mod008_and_mod009_agrees_with_the_reference(
    tmp_path: Path, capture: str
) -> None:
    import_files(CAPTURES[capture], tmp_path / "tape")
    tape = Tape.open(tmp_path / "tape")
    # real minutes move a few bps: whales from 50k USD, 2 bps of impact, bursts of 5 bps over 10 s on 100k
    cfg = ConfigLoader().load(
        "large",
        env={},
        overrides={
            "modules": list(MODULES),
            "settings.MOD-001.thresholds_usd": {},
            "settings.MOD-001.default_threshold_usd": 50_000.0,
            "settings.MOD-007.threshold_fraction": 0.5,
            "settings.MOD-008.horizons_s": [10, 60],
            "settings.MOD-008.threshold_bps": 2.0,
            "settings.MOD-009.lookback_s": 10,
            "settings.MOD-009.threshold_bps": 5.0,
            "settings.MOD-009.min_notional_usd": 100_000.0,
        },
    )
    items = tape_items(tape)
    got = run(cfg, MODULES, items, batch_rows=len(items) // 7 + 1)
    ref = run_reference(from_tape(tape), cfg)
    alerts = got["alerts"].to_pylist()
    assert {"price_impact", "momentum_burst"} <= {a["kind"] for a in alerts}
    assert same_alerts(ref.alert_rows(), alerts)
    key = ("whale_alert_id", "horizon_s")
    rows = sorted(got["whale_impact"].to_pylist(), key=lambda r: tuple(r[k] for k in key))
    want = ref.whale_impact.sort(list(key)).to_dicts()
    assert len(rows) == len(want) > 0
    assert [(r["whale_alert_id"], r["horizon_s"], r["price"]) for r in rows] == [
        (r["whale_alert_id"], r["horizon_s"], r["price"]) for r in want
    ]
    assert [r["impact_bps"] for r in rows] == pytest.approx([r["impact_bps"] for r in want], rel=1e-9)
