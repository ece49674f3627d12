"""Trade a set of follow signals, and the random baseline beside them, against the tapes' market."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from coattail.backtest.engine import BacktestParams, BacktestResult, Venue, random_directions, run_backtest
from coattail.backtest.market import load_markets
from coattail.run.progress import Steps
from pipeline.config import ConfigLoader

STRATEGIES = ("follow", "random")
"""The signals as given, and the same signals with directions drawn from the params' seed."""


def trade(
    signals: pl.DataFrame, tapes: Sequence[Path], params: BacktestParams, steps: Steps
) -> dict[str, BacktestResult]:
    """Each strategy's result, trading on every signalled asset's Hyperliquid instrument against the
    market of its reference instrument in ``tapes`` (assets with neither are not traded)."""
    registry = ConfigLoader().load("small", env={}).instruments
    with steps.step("market: loading the tapes"):
        refs = {a: registry.reference[a] for a in set(signals["asset"].to_list()) if a in registry.reference}
        markets = load_markets(tapes, list(refs.values()))
    venues: dict[str, Venue] = {}
    for asset, key in refs.items():
        inst = registry.hyperliquid(asset)
        if inst is not None and markets[key].events:
            venues[asset] = Venue(inst, markets[key])
    results = {}
    for name, trading in zip(STRATEGIES, (signals, random_directions(signals, params.seed)), strict=True):
        with steps.step(f"backtest: {name}"):
            results[name] = run_backtest(trading, venues, params)
    return results
