"""Walk-forward: a day trades only the sources that the days before it qualified, and the command reports
per-day P&L over a tape that crosses midnight."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from coattail.backtest.walkforward import day_start_us, parse_days, walk_forward_signals
from coattail.cli import app
from core.errors import CoattailError
from pipeline.detectors.alpha_scoring import AlphaSettings
from tests.pipeline.detectors.alpha_kit import SEC, T0, planted
from tests.pipeline.test_basis_spark import write_tape

DAY = 86_400 * SEC
SETTINGS = AlphaSettings(min_samples=2)


def score(symbol: str, t: int, mean: float, count: int = 3, t_stat: float | None = 5.0) -> dict[str, object]:
    return {"asset": "BTC", "detector": "MOD-001", "exchange": "binance", "symbol": symbol, "horizon_s": 300,
            "alert_id": f"{symbol}{t}", "decision_ts": t, "ts_event": t + 300 * SEC, "direction": 1,
            "count": count, "mean_bps": mean, "hit_rate": 0.9, "t_stat": t_stat}


def test_a_day_trades_the_sources_the_days_before_qualified() -> None:
    assert day_start_us(date(2026, 1, 1)) == T0
    scores = pl.DataFrame([
        score("A", T0 - DAY // 2, 12.0),          # day 0: A qualifies
        score("B", T0 - DAY // 2, 1.0),           # B does not
        score("A", T0 + 3600 * SEC, 12.0),        # day 1: traded (A qualified before it)
        score("B", T0 + 3600 * SEC, 30.0),        # day 1: not traded (B qualified on it only)
        score("B", T0 + DAY + 60 * SEC, 30.0),    # day 2: traded
    ])
    out = walk_forward_signals(scores, parse_days("2025-12-31..2026-01-02"), SETTINGS)
    assert out.select("alert_id", "day").rows() == [
        (f"A{T0 + 3600 * SEC}", "2026-01-01"), (f"B{T0 + DAY + 60 * SEC}", "2026-01-02"),
    ]
    with pytest.raises(CoattailError, match="YYYY-MM-DD"):
        parse_days("yesterday")


def test_a_false_positive_bound_qualifies_only_significant_sources() -> None:
    """With ``false_positive_rate`` the day's sources also pass MOD-011's t-test (one-sided, count - 1
    degrees of freedom): t = 5 over 3 values (p = 0.019) passes 0.05, t = 2 (p = 0.092) and a null t
    do not; without the bound all three qualify."""
    scores = pl.DataFrame([
        score("A", T0 - DAY // 2, 12.0, t_stat=5.0), score("B", T0 - DAY // 2, 12.0, t_stat=2.0),
        score("C", T0 - DAY // 2, 12.0, t_stat=None),
        *(score(s, T0 + 3600 * SEC, 12.0) for s in "ABC"),
    ])
    days = parse_days("2026-01-01")
    bounded = walk_forward_signals(scores, days, AlphaSettings(min_samples=2, false_positive_rate=0.05))
    assert bounded["alert_id"].to_list() == [f"A{T0 + 3600 * SEC}"]
    assert walk_forward_signals(scores, days, SETTINGS).height == 3


def test_the_command_walks_forward_over_midnight(tmp_path: Path) -> None:
    # 160 whales 45 s apart from 23:00: the first hour scores, the second is traded
    tape = write_tape(tmp_path / "tape", planted(8, edge_bps=30.0, whales=160, start=T0 - 3600 * SEC))
    runs = tmp_path / "runs"
    done = CliRunner().invoke(app, ["backtest", str(tape), "--runs", str(runs), "--days", "2026-01-01",
                                    "--set", "settings.MOD-011.min_samples=5"], terminal_width=200)
    assert done.exit_code == 0, done.output
    (run,) = runs.iterdir()
    summary = json.loads((run / "backtest" / "summary.json").read_text())
    assert summary["days"] == "2026-01-01"
    assert list(summary["follow"]["per_day_pnl_usd"]) == ["2026-01-01"]
    assert summary["follow"]["trades"] >= 60 and summary["follow"]["pnl_usd"] > 0
