"""MOD-005 in Spark: streaming in both ``spark.keyed_state`` modes (small micro-batches, state across
them) and the reprocessor give the batch engine's alerts, ``basis_metrics`` and ``BASIS_STALLED``
counts on a tape with two venues of BTC, a dislocation and a silent venue."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from core.tape import TapeWriter, tape_schema
from pipeline.config import Config, RuntimeSettings
from pipeline.jobs.loader import load_tape
from pipeline.jobs.reprocessor import reprocess
from pipeline.runner import PipelineRunner
from pipeline.sinks.iceberg import IcebergSink
from pipeline.sinks.memory import MemoryAlertSink, MemoryTableSink
from pipeline.testkit import Item, run_engine, small_config, trade
from tests.pipeline.keyed_kit import rows

pytestmark = pytest.mark.spark
T0 = 1_767_225_600_000_000
SEC = 1_000_000
PAIR = ["binance:BTCUSDT", "coinbase:BTC-USD"]
TABLES = ("alerts", "basis_metrics", "dq_metrics")


def config(keyed_state: str, tmp: Path) -> Config:
    cfg = small_config(**{
        "modules": ["MOD-005"], "instruments": PAIR, "spark.keyed_state": keyed_state,
        "settings.MOD-005.pairs": [PAIR], "settings.MOD-005.stall_seconds": 30,
    })
    return cfg.model_copy(update={"runtime": RuntimeSettings(state_dir=tmp / "state")})


def items() -> list[Item]:
    """Four minutes, a trade per leg every 2 s: binance 40 bps up from 60 s to 100 s, coinbase silent
    from 150 s to 200 s (a stall), in time order."""
    out: list[Item] = []
    for i in range(120):
        ts = T0 + i * 2 * SEC
        if not 75 <= i < 100:
            out.append(trade(i + 1, 50_000.0, 0.1, ts + 1, exchange="coinbase", symbol="BTC-USD"))
        price = 50_200.0 if 30 <= i < 50 else 50_000.0
        out.append(trade(i + 1, price, 0.1, ts + 2))
    return out


def write_tape(path: Path, events: list[Item]) -> Path:
    rows: dict[str, list[dict[str, Any]]] = {"trade": [], "quote": []}
    for seq, item in enumerate(events):
        assert not isinstance(item, bytes)
        rows.setdefault(item[0], []).append({**item[1], "seq": seq})  # transfers when there are any
    with TapeWriter(path) as w:
        for kind, kind_rows in rows.items():
            w.write(kind, pa.Table.from_pylist(kind_rows, schema=tape_schema(kind)))  # type: ignore[arg-type]
        w.close(source="synthetic")
    return path


def stream(spark: Any, cfg: Config, events: list[Item], tmp: Path, names: tuple[str, ...],
           max_records: int) -> dict[str, pa.Table]:
    """The tables a streaming run over ``events`` (as a tape, ``max_records`` a micro-batch) wrote; it
    must take more than three micro-batches."""
    tape = write_tape(tmp / "tape", events)
    tables, alerts = MemoryTableSink(), MemoryAlertSink()
    runner = PipelineRunner(cfg, checkpoint=tmp / "ckpt", source=tape, spark=spark, table_sinks=[tables],
                            alert_sinks=[alerts], max_records_per_batch=max_records)
    assert runner.run(until_idle=True, timeout=300).batches > 3
    return {n: tables.read(n) for n in names}


def comparable(tables: dict[str, pa.Table]) -> dict[str, Any]:
    """Alerts and basis rows as multisets, DQ counts summed per key, window and reason (their rows are
    per micro-batch)."""
    dq: Counter[tuple[Any, ...]] = Counter()
    for r in tables["dq_metrics"].to_pylist():
        dq[(r["exchange"], r["symbol"], r["window_start"], r["reason"])] += r["count"]
    return {"alerts": rows(tables["alerts"], drop=("ts_written",)), "basis": rows(tables["basis_metrics"]),
            "dq": dict(dq)}


def expected(tmp: Path) -> dict[str, Any]:
    results = run_engine(config("driver", tmp), items())
    return comparable({n: pa.concat_tables([r.tables[n] for r in results]) for n in TABLES})


@pytest.mark.parametrize("keyed_state", ["driver", "state_store"])
def test_streaming_in_both_keyed_modes_gives_the_batch_result(
    spark: Any, tmp_path: Path, keyed_state: str
) -> None:
    want = expected(tmp_path)
    assert want["alerts"] and want["basis"] and want["dq"]
    assert comparable(stream(spark, config(keyed_state, tmp_path), items(), tmp_path, TABLES, 70)) == want


def test_the_reprocessor_gives_the_batch_result(spark: Any, tmp_path: Path) -> None:
    cfg = config("driver", tmp_path)
    sink = IcebergSink(cfg)
    load_tape(write_tape(tmp_path / "tape", items()), sink)
    result = reprocess(spark, cfg, modules=["MOD-005"], start_us=T0, end_us=T0 + 3600 * SEC, name="basis",
                       sink=sink)
    assert comparable(result.tables) == expected(tmp_path)
