"""The reprocessor runs MOD-008 and MOD-009 as streaming does: same alerts and whale-impact rows as the
engine in micro-batches, and as the independent reference."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest

from coattail.reference import from_tape, run_reference
from core.tape import Tape, TapeWriter, tape_schema
from pipeline.config import Config, RuntimeSettings
from pipeline.jobs.loader import load_tape
from pipeline.jobs.reprocessor import reprocess
from pipeline.sinks.iceberg import IcebergSink
from tests.pipeline.detectors.market_kit import MODULES, market_config
from tests.pipeline.detectors.windowed_kit import SEC, run
from tests.pipeline.jobs.test_reprocessor import T0, key_of, tape_items

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def moving_market(path: Path, seed: int = 11) -> Path:
    """Two symbols for 10 minutes, a trade a second with prices that drift and jump by up to 1 %, a
    whale-sized trade every 37 s, a quote after each trade."""
    rng = random.Random(seed)
    events: list[tuple[int, str, dict[str, Any]]] = []
    for sym, px in (("BTCUSDT", 50_000.0), ("ETHUSDT", 3_000.0)):
        for i in range(600):
            ts = T0 + i * SEC + rng.randint(0, 999_999)
            px = round(px * (1 + rng.choice([-0.01, -0.002, 0.0, 0.0, 0.001, 0.003, 0.01])), 2)
            usd = 3_000.0 if i % 37 == 5 else rng.uniform(50.0, 400.0)
            side = "sell" if (i // 9) % 2 else "buy"
            events.append(
                (
                    ts,
                    "trade",
                    {
                        "exchange": "binance",
                        "symbol": sym,
                        "trade_id": i + 1,
                        "price": px,
                        "qty": usd / px,
                        "side": side,
                        "ts_event": ts,
                        "ts_recv": None,
                    },
                )
            )
            events.append(
                (
                    ts + 1,
                    "quote",
                    {
                        "exchange": "binance",
                        "symbol": sym,
                        "bid_px": px - 0.5,
                        "bid_qty": 1.0,
                        "ask_px": px + 0.5,
                        "ask_qty": 1.0,
                        "update_id": i,
                        "ts_event": ts + 1,
                        "ts_recv": None,
                    },
                )
            )
    events.sort(key=lambda e: e[0])
    rows: dict[str, list[dict[str, Any]]] = {"trade": [], "quote": []}
    for seq, (_, kind, row) in enumerate(events):
        rows[kind].append({**row, "seq": seq})
    with TapeWriter(path) as w:
        for kind, part in rows.items():
            w.write(kind, pa.Table.from_pylist(part, schema=tape_schema(kind)))  # type: ignore[arg-type]
        w.close(source="synthetic")
    return path


def impact_rows(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted((r["whale_alert_id"], r["horizon_s"], r["price"], round(r["impact_bps"], 9)) for r in rows)


@pytest.mark.spark
@pytest.mark.parametrize("shuffle", [False, True], ids=["by-partition", "by-shuffle"])
def test_reprocessor_runs_the_market_modules_as_streaming_and_the_reference(
    spark: SparkSession, config: Config, tmp_path: Path, shuffle: bool
) -> None:
    cfg = market_config(config).model_copy(update={"runtime": RuntimeSettings(state_dir=tmp_path / "state")})
    tape = moving_market(tmp_path / "tape")
    sink = IcebergSink(cfg)
    load_tape(tape, sink)
    result = reprocess(
        spark,
        cfg,
        modules=list(MODULES),
        start_us=T0,
        end_us=T0 + 3600 * SEC,
        name="mkt",
        sink=sink,
        shuffle=shuffle,
    )
    alerts = result.tables["alerts"].to_pylist()
    assert {"price_impact", "momentum_burst", "whale_trade"} <= {a["kind"] for a in alerts}
    impact = impact_rows(result.tables["whale_impact"].to_pylist())
    assert impact
    items = tape_items(tape)
    for batch in (None, 257):
        streamed = run(cfg, MODULES, items, batch)
        assert key_of(streamed["alerts"].to_pylist()) == key_of(alerts)
        assert impact_rows(streamed["whale_impact"].to_pylist()) == impact
    ref = run_reference(from_tape(Tape.open(tape)), cfg)
    assert key_of(ref.alert_rows()) == key_of(alerts)
    assert impact_rows(ref.whale_impact.to_dicts()) == impact
    assert sink.read("whale_impact_mkt").num_rows == len(impact)
