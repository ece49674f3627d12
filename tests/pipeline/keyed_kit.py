"""Shared by the state-store tests: a config with every module switched to fire on small data, a tape
whose ``seq`` disagrees with tape order, and table contents in a comparable form."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.tape import TapeWriter, tape_schema
from pipeline.config import Config
from pipeline.cross import INTERNAL_SCHEMAS
from pipeline.detectors.registry import ModuleRegistry
from pipeline.engine import BatchResult, Engine
from pipeline.keyed import KeyedStep, assemble
from pipeline.parse import parse_batch
from pipeline.runner import PipelineRunner
from pipeline.sinks.iceberg import IcebergSink
from pipeline.sinks.memory import MemoryTableSink
from pipeline.tables import schemas_of, tables_for
from pipeline.testkit import T0, Item, payloads, quote, raw_table, small_config, trade

ALL_MODULES = ["MOD-001", "MOD-002", "MOD-003", "MOD-004", "MOD-006", "MOD-007", "MOD-008", "MOD-009"]


def keyed_config(keyed_state: str, **overrides: Any) -> Config:
    """Every module, thresholds low enough for a few hundred events to fire each one, plus overrides."""
    return small_config(**{
        "modules": ALL_MODULES,
        "spark.keyed_state": keyed_state,
        "settings.MOD-001.default_threshold_usd": 2_000,
        "settings.MOD-002.min_history": 2,
        "settings.MOD-002.z_threshold": 1.5,
        "settings.MOD-002.std_floor_usd": 10.0,
        "settings.MOD-002.min_notional_usd": 100.0,
        "settings.MOD-003.min_history": 2,
        "settings.MOD-003.median_multiple": 1.5,
        "settings.MOD-006.min_notional_usd": 500.0,
        "settings.MOD-006.threshold": 0.5,
        "settings.MOD-007.max_gap_ms": 10_000,
        "settings.MOD-007.threshold_fraction": 0.5,
        "settings.MOD-008.horizons_s": [5, 20],
        "settings.MOD-009.lookback_s": 5,
        "settings.MOD-009.min_notional_usd": 500.0,
        **overrides,
    })


KEYS = [("binance", "XRPUSDT"), ("binance", "ADAUSDT"), ("coinbase", "BTC-USD")]


def write_tape(path: Path, n: int = 240) -> Path:
    """Three keys over 12 minutes: whales, volume spikes, wide and crossed books, duplicates, id gaps,
    a zero-size trade (quarantined); ``seq`` is a permutation, so only the position is tape order."""
    trades, quotes = [], []
    for i in range(n):
        exchange, symbol = KEYS[i % 3]
        ts = T0 + i * 3_000_000
        seq = (i * 7_919) % 10_007  # unique, and not increasing with i
        if i % 4 == 3:
            bid = 100.0 + (i % 7 == 0) * 2.0 - (i % 9 == 0) * 3.0
            quotes.append({**quote(i, bid, 101.0, ts, symbol=symbol, exchange=exchange)[1], "seq": seq})
        else:
            tid = i - (i % 11 == 0) + (i % 13 == 0) * 5
            qty = 1.0 + (i % 6) * 10 + (100 < i < 130) * 40.0 - (i == 50) * 51.0
            side = "sell" if (i // 15) % 2 else "buy"  # streaks of five per key: runs and one-sided windows
            row = trade(tid, 50.0 + (i % 5) * 10, qty, ts, symbol=symbol, exchange=exchange, side=side)[1]
            trades.append({**row, "seq": seq})
    with TapeWriter(path) as w:
        w.write("trade", pa.Table.from_pylist(trades, schema=tape_schema("trade")))
        w.write("quote", pa.Table.from_pylist(quotes, schema=tape_schema("quote")))
        w.close(source="synthetic")
    return path


def rows(table: pa.Table, drop: tuple[str, ...] = ()) -> list[str]:
    """A table's rows as sorted JSON lines (a multiset comparable with ``==``), without ``drop``."""
    keep = [n for n in table.column_names if n not in drop]
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in table.select(keep).to_pylist())


def contents(
    sink: MemoryTableSink | IcebergSink, names: Iterable[str], dq_summed: bool = False
) -> dict[str, Any]:
    """The content of every table of ``names``. ``dq_summed``: dq_metrics summed per (key, window,
    reason), since its rows are per micro-batch (only the sums agree across micro-batch sizes)."""
    out: dict[str, Any] = {}
    for name in sorted(names):
        table = sink.read(name)
        if name == "dq_metrics" and dq_summed:
            dq: Counter[tuple[Any, ...]] = Counter()
            for r in table.to_pylist():
                dq[(r["exchange"], r["symbol"], r["window_start"], r["reason"])] += r["count"]
            out[name] = dict(dq)
        else:
            out[name] = rows(table, drop=("ts_written",) if name == "alerts" else ())
    return out


def run_state_store(
    cfg: Config, items: Sequence[Item], cuts: Sequence[int], state_dir: Path, registry: ModuleRegistry
) -> list[BatchResult]:
    """State-store mode without Spark: ``KeyedStep`` per key (state as bytes, as in Spark's store), then
    ``assemble`` and the driver's ``process_assembled``, with a driver restart before every batch."""
    detectors = registry.build(cfg)
    step = KeyedStep(cfg, detectors)
    schemas = {**schemas_of(tables_for(detectors)), **INTERNAL_SCHEMAS}
    datas = payloads(items)
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(datas)}), len(datas)]
    keyed: dict[tuple[str, str], bytes | None] = {}
    results = []
    for batch_id, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        parsed = pa.Table.from_batches([parse_batch(raw_table(datas[lo:hi], first_seq=lo).to_batches()[0])])
        outs = []
        keys = set(zip(parsed["exchange"].to_pylist(), parsed["symbol"].to_pylist(), strict=True))
        for ex, sym in sorted(keys):
            rows = parsed.filter(pc.and_(pc.equal(parsed["exchange"], ex), pc.equal(parsed["symbol"], sym)))
            out, keyed[(ex, sym)] = step.step((ex, sym), rows, keyed.get((ex, sym)))
            outs.append(out)
        output = pa.Table.from_pandas(pd.concat(outs, ignore_index=True), preserve_index=False)
        engine = Engine(cfg, detectors, state_dir=state_dir)
        results.append(engine.process_assembled(assemble(output, batch_id, schemas)))
        engine.commit(batch_id)
    return results


def crash_after(runner: PipelineRunner, batches: int) -> None:
    """Run ``runner`` until it routed ``batches`` batches, stop it, then forget Spark's record of the last
    one: as if the process died after the sinks committed it. Spark runs that batch again from the state
    store's previous version, and the sinks must skip what they hold."""
    runner.start()
    while runner.progress.batches < batches:
        runner.check_alive()
        assert runner.query is not None
        runner.query.awaitTermination(1)
    runner.stop()
    commits = runner.checkpoint / "query" / "commits"
    last = max(int(p.name) for p in commits.iterdir() if p.name.isdigit())
    (commits / str(last)).unlink()
    (commits / f".{last}.crc").unlink(missing_ok=True)
