"""The streaming query over a tape: streaming = batch for several micro-batch sizes; a restart from the
checkpoint in the middle (with the last batch re-run) gives the same Iceberg contents as one run."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from core.errors import PipelineError
from core.tape import TapeWriter, tape_schema
from pipeline.config import Config, RuntimeSettings
from pipeline.runner import PipelineRunner
from pipeline.sinks.iceberg import IcebergSink
from pipeline.sinks.memory import MemoryAlertSink, MemoryTableSink
from pipeline.testkit import T0, quote, small_config, trade

pytestmark = pytest.mark.spark
CFG = small_config(**{"settings.MOD-001.default_threshold_usd": 1_000})


def write_tape(path: Path, n: int = 120) -> Path:
    """A tape with whales, duplicates, gaps, price jumps, crossed quotes and feed gaps on two keys."""
    trades, quotes = [], []
    for i in range(n):
        sym = "XRPUSDT" if i % 3 else "ADAUSDT"
        ts = T0 + i * 2_500_000 + (40_000_000 if i > n // 2 else 0)
        if i % 4 == 3:
            quotes.append({**quote(i, 100.0 + (i % 7 == 0) * 2, 101.0, ts, symbol=sym)[1], "seq": i})
        else:
            tid = i - (i % 11 == 0) + (i % 13 == 0) * 5
            row = trade(tid, 50.0 + (i % 5) * 10, 1.0 + (i % 6) * 10, ts, symbol=sym)[1]
            trades.append({**row, "seq": i})
    with TapeWriter(path) as w:
        w.write("trade", pa.Table.from_pylist(trades, schema=tape_schema("trade")))
        w.write("quote", pa.Table.from_pylist(quotes, schema=tape_schema("quote")))
        w.close(source="synthetic")
    return path


@pytest.fixture(scope="module")
def tape(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tape(tmp_path_factory.mktemp("tape") / "t")


def summary(tables: MemoryTableSink | IcebergSink, alerts: list[str] | None = None) -> dict[str, object]:
    dq: Counter[tuple[object, ...]] = Counter()
    for row in tables.read("dq_metrics").to_pylist():
        dq[(row["exchange"], row["symbol"], row["window_start"], row["reason"])] += row["count"]
    trades = tables.read("trades")
    return {
        "alerts": sorted(tables.read("alerts").column("alert_id").to_pylist()),
        "dq": dict(dq),
        "trades": sorted(zip(trades.column("symbol").to_pylist(),
                             trades.column("sequence_number").to_pylist(),
                             strict=True)),
        "quotes": tables.read("quotes").num_rows,
    }


def test_streaming_equals_batch_for_several_batch_sizes(spark: object, tape: Path, tmp_path: Path) -> None:
    batch_tables, batch_alerts = MemoryTableSink(), MemoryAlertSink()
    runner = PipelineRunner(CFG, checkpoint=tmp_path / "b", source=tape, spark=spark,  # type: ignore[arg-type]
                            table_sinks=[batch_tables], alert_sinks=[batch_alerts])
    result = runner.run_batch(runner.tape_batch(tape))
    assert result.records_in == 120 == result.valid + result.quarantined
    expected = summary(batch_tables)
    assert len(expected["alerts"]) > 5 and expected["dq"]  # type: ignore[arg-type]
    for size in (9, 45, 500):
        tables, alerts = MemoryTableSink(), MemoryAlertSink()
        stream = PipelineRunner(CFG, checkpoint=tmp_path / f"s{size}", source=tape, spark=spark,  # type: ignore[arg-type]
                                table_sinks=[tables], alert_sinks=[alerts], max_records_per_batch=size)
        progress = stream.run(until_idle=True, timeout=300)
        assert progress.records_in == 120 and progress.batches == -(-120 // size)
        assert summary(tables) == expected, f"micro-batch size {size}"
        assert set(alerts.items) == set(batch_alerts.items)


def _iceberg(tmp: Path) -> IcebergSink:
    cfg: Config = CFG.model_copy(update={"runtime": RuntimeSettings(state_dir=tmp)})
    return IcebergSink(cfg)


def test_restart_in_the_middle_gives_the_same_iceberg_contents(
    spark: object, tape: Path, tmp_path: Path
) -> None:
    whole = _iceberg(tmp_path / "whole")
    PipelineRunner(CFG, checkpoint=tmp_path / "ck-whole", source=tape, spark=spark,  # type: ignore[arg-type]
                   table_sinks=[whole], alert_sinks=[MemoryAlertSink()],
                   max_records_per_batch=20).run(until_idle=True, timeout=300)

    ckpt = tmp_path / "ck"
    first = PipelineRunner(CFG, checkpoint=ckpt, source=tape, spark=spark,  # type: ignore[arg-type]
                           table_sinks=[_iceberg(tmp_path / "restart")], alert_sinks=[MemoryAlertSink()],
                           max_records_per_batch=20)
    first.start()
    while first.progress.batches < 3:
        first.check_alive()
        assert first.query is not None
        first.query.awaitTermination(1)
    first.stop()
    # pretend the process died after the sinks (and the engine state) committed the last batch, before
    # Spark recorded it: Spark re-runs that batch, re-reading the same range of the source
    def ids(d: Path) -> list[int]:
        return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit())

    offsets, commits = ids(ckpt / "query" / "offsets"), ids(ckpt / "query" / "commits")
    if commits and commits[-1] == offsets[-1]:
        (ckpt / "query" / "commits" / str(commits[-1])).unlink()
        (ckpt / "query" / "commits" / f".{commits[-1]}.crc").unlink(missing_ok=True)
    second = PipelineRunner(CFG, checkpoint=ckpt, source=tape, spark=spark,  # type: ignore[arg-type]
                            table_sinks=[_iceberg(tmp_path / "restart")], alert_sinks=[MemoryAlertSink()],
                            max_records_per_batch=20)
    second.run(until_idle=True, timeout=300)
    assert summary(_iceberg(tmp_path / "restart")) == summary(whole)


def test_a_fresh_checkpoint_on_bronze_rows_is_refused_naming_the_table(
    spark: object, tape: Path, tmp_path: Path
) -> None:
    ckpt = tmp_path / "ck"
    PipelineRunner(CFG, checkpoint=ckpt, source=tape, spark=spark,  # type: ignore[arg-type]
                   table_sinks=[_iceberg(tmp_path / "st")], alert_sinks=[MemoryAlertSink()]
                   ).run(until_idle=True, timeout=300)
    before = _iceberg(tmp_path / "st").read("trades").num_rows
    assert before > 0
    again = PipelineRunner(CFG, checkpoint=tmp_path / "fresh", source=tape, spark=spark,  # type: ignore[arg-type]
                           table_sinks=[_iceberg(tmp_path / "st")], alert_sinks=[MemoryAlertSink()])
    with pytest.raises(PipelineError, match=rf"Iceberg table {CFG.storage.namespace}\.trades already holds "
                                            r"bronze rows .*storage\.namespace"):
        again.start()
    assert again.query is None
    # the checkpoint that wrote them resumes (nothing new in the tape: nothing appended)
    PipelineRunner(CFG, checkpoint=ckpt, source=tape, spark=spark,  # type: ignore[arg-type]
                   table_sinks=[_iceberg(tmp_path / "st")], alert_sinks=[MemoryAlertSink()]
                   ).run(until_idle=True, timeout=300)
    assert _iceberg(tmp_path / "st").read("trades").num_rows == before
