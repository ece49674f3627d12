"""Micro benchmarks of the pipeline's hot paths (pytest-benchmark): ``make bench-micro``.

Not tests of behaviour (``make test`` runs them once, untimed, as a smoke). Compare with a saved run:
``make bench-micro BENCH_ARGS=--benchmark-compare`` (each run is saved under ``.benchmarks/``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from core.events import EventKind
from core.tape import Tape
from pipeline.config import Config, ConfigLoader, RuntimeSettings
from pipeline.detectors.registry import ModuleRegistry
from pipeline.engine import BatchResult, Engine
from pipeline.kpl import aggregate_arrays, deaggregate
from pipeline.parse import parse_batch
from pipeline.sinks.iceberg import IcebergSink
from pipeline.source.arrow_build import raw_batches
from pipeline.tables import tables_for
from replay.merge import merge_tapes
from replay.testkit import write_tape

Bench = Callable[..., Any]
MODULES = ["MOD-001", "MOD-002", "MOD-003", "MOD-004", "MOD-005", "MOD-006", "MOD-007"]


def config_with(modules: list[str], **overrides: Any) -> Config:
    """The medium tier (every module it has) with only ``modules`` on."""
    base = ConfigLoader().load("medium", env={})
    pairs = [
        tuple(i.split(":", 1))
        for i in (
            "binance:BTCUSDT",
            "binance:ETHUSDT",
            "binance:SOLUSDT",
            "coinbase:BTCUSDT",
            "coinbase:ETHUSDT",
            "coinbase:SOLUSDT",
        )
    ]
    listed = base.instruments.listed_names(pairs)  # type: ignore[arg-type]
    return ConfigLoader().load(
        "medium", env={}, overrides={"modules": modules, "instruments": listed, **overrides}
    )


def test_parse_records(benchmark: Bench, raw: pa.Table) -> None:
    """Wire JSON -> ``PARSED_SCHEMA`` (record rules included)."""
    batch = raw.combine_chunks().to_batches()[0]
    parsed = benchmark(parse_batch, batch)
    assert parsed.num_rows == raw.num_rows


def test_kpl_aggregate(benchmark: Bench, wire: tuple[pa.Array, pa.Array]) -> None:
    """User records -> aggregated Kinesis records (the producer and the replay's Kinesis target)."""
    aggregates = benchmark(aggregate_arrays, *wire)
    assert sum(a.user_records for a in aggregates) == len(wire[1])


def test_kpl_deaggregate(benchmark: Bench, wire: tuple[pa.Array, pa.Array]) -> None:
    """Aggregated records -> user records (the Kinesis source)."""
    aggregates = aggregate_arrays(*wire)

    def run() -> int:
        return sum(len(deaggregate(a.data, a.partition_key)) for a in aggregates)

    assert benchmark(run) == len(wire[1])


def test_kpl_to_arrow(benchmark: Bench, wire: tuple[pa.Array, pa.Array]) -> None:
    """Aggregated records -> ``RAW_SCHEMA`` Arrow batches, as the Kinesis source reads a shard's range."""
    aggregates = aggregate_arrays(*wire)
    seqs = [f"{i:056d}" for i in range(len(aggregates))]
    keys = [a.partition_key for a in aggregates]
    datas = [a.data for a in aggregates]
    ingests: list[int | None] = [None] * len(aggregates)

    def run() -> int:
        return sum(b.num_rows for b in raw_batches("shard-1", seqs, keys, datas, ingests))

    assert benchmark(run) == len(wire[1])


@pytest.mark.parametrize("module", ["sequencer only", *MODULES])
def test_detector_core(benchmark: Bench, parsed: pa.RecordBatch, module: str) -> None:
    """The engine over the batch with one module on (``sequencer only``: none, the engine's own cost)."""
    config = config_with([] if module == "sequencer only" else [module])
    detectors = ModuleRegistry().build(config)

    def run() -> BatchResult:
        return Engine(config, detectors).process(parsed, 0)  # fresh state: every round the same work

    result = benchmark(run)
    assert result.records_in == parsed.num_rows


def test_merge(
    benchmark: Bench, events: list[tuple[EventKind, dict[str, Any]]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Two tapes merged by exchange time (the replay's input)."""
    paths = []
    for i, exchange in enumerate(("binance", "coinbase")):
        path = tmp_path_factory.mktemp("tapes") / f"t{i}"
        write_tape(
            path,
            [e for k, e in events if k == "trade" and e["exchange"] == exchange],
            [e for k, e in events if k == "quote" and e["exchange"] == exchange],
        )
        paths.append(path)
    tapes = [Tape.open(p) for p in paths]

    def run() -> int:
        return sum(chunk.num_rows for chunk in merge_tapes(tapes))

    assert benchmark(run) == len(events)


def test_sinks_commit(benchmark: Bench, parsed: pa.RecordBatch, tmp_path: Path) -> None:
    """One micro-batch's tables committed to Iceberg (local SQL catalog), as the router's spool does."""
    config = config_with(["MOD-001", "MOD-004"])
    config = config.model_copy(update={"runtime": RuntimeSettings(profile="lite", state_dir=tmp_path)})
    detectors = ModuleRegistry().build(config)
    result = Engine(config, detectors).process(parsed, 0)
    sink = IcebergSink(config)
    sink.open(tables_for(detectors))
    batch_ids = iter(range(1_000_000))

    def run() -> None:
        sink.write_batches("bench", [(next(batch_ids), result.tables)])

    benchmark(run)
    sink.close()
