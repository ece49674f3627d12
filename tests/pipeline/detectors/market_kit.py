"""Settings that make the large tier's market modules (MOD-008, MOD-009) fire on a few dozen events."""

from __future__ import annotations

from typing import Any

from pipeline.config import Config
from pipeline.detectors.momentum import MomentumSettings
from pipeline.detectors.sliced_whale import SlicedWhaleSettings
from pipeline.detectors.whale import WhaleSettings
from pipeline.detectors.whale_impact import WhaleImpactSettings

MODULES = ("MOD-001", "MOD-007", "MOD-008", "MOD-009")
T1 = 1_500.0
"""MOD-001's threshold in these tests (USD)."""


def market_config(config: Config, **changes: Any) -> Config:
    """``config`` with MOD-001 at ``T1``, MOD-007 runs of 3 within 10 s reaching half of it, MOD-008 at 5
    and 20 s, MOD-009 over 5 s from 500 USD, a 10-second watermark and ``MODULES`` on; ``changes``
    override MOD-008's (``impact``) and MOD-009's (``momentum``) settings."""
    spark = config.spark.model_copy(update={"watermark_seconds": 10})
    return config.with_settings(
        WhaleSettings(default_threshold_usd=T1, thresholds_usd={}),
        SlicedWhaleSettings(max_gap_ms=10_000, threshold_fraction=0.5),
        WhaleImpactSettings(**{"horizons_s": (5, 20), **changes.get("impact", {})}),
        MomentumSettings(**{"lookback_s": 5, "min_notional_usd": 500.0, **changes.get("momentum", {})}),
    ).model_copy(update={"spark": spark, "modules": MODULES})
