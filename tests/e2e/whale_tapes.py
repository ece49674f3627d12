"""Synthetic whale-day tapes for the end-to-end tests (small, deterministic from the seed)."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import ConfigLoader

START_US = 1_767_225_600_000_000  # 2026-01-01 00:00 UTC


def whale_day(
    out: Path,
    *,
    symbols: tuple[str, ...],
    exchanges: tuple[str, ...],
    minutes: int,
    seed: int,
    scale: float,
    scenario: str = "whale-day",
) -> Path:
    """Generate the ``whale-day`` scenario (or another preset) into ``out`` and return it."""
    from sim.generator import GenerateSpec, generate
    from sim.scenario import load_scenario

    spec = GenerateSpec(
        scenario=load_scenario(scenario),
        symbols=symbols,
        exchanges=exchanges,
        start_us=START_US,
        duration_us=minutes * 60 * 1_000_000,
        seed=seed,
        scale=scale,
    )
    generate(spec, ConfigLoader().load("small", env={}), out)
    return out
