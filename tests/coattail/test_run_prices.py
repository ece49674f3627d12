"""A run's price series (``coattail.run.judge``): written while the pipeline starts, read from the tapes
until then."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from coattail.run.judge import PRICES_FILE, run_prices, thinned_prices, write_prices
from tests.coattail.coattail_tapekit import make_tape

TRADES = [(float(i), "BTCUSDT" if i % 3 else "ETHUSDT", i + 1, 50_000.0 + i, 0.5, "buy") for i in range(30)]


def test_the_series_comes_from_the_tapes_until_the_run_wrote_it_whole(tmp_path: Path) -> None:
    tape = make_tape(tmp_path / "tape", trades=TRADES).path
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    expected = thinned_prices([tape])
    assert expected.height == len(TRADES)
    assert run_prices(run_dir, [tape]).equals(expected)
    write_prices([tape], run_dir)
    assert [p.name for p in run_dir.iterdir()] == [PRICES_FILE]  # no partial file left behind
    assert pl.read_parquet(run_dir / PRICES_FILE).equals(expected)
    # once written, the file is what a reader gets
    expected.head(3).write_parquet(run_dir / PRICES_FILE)
    assert run_prices(run_dir, [tape]).height == 3
