"""The real on-chain sample (tests/data/onchain, an Etherscan export) imported, replayed through the tape
source and Spark in both keyed modes, and loaded into bronze and reprocessed (by partition and by
shuffle); MOD-010's alerts and counts compared with the reference each time.

Beside the real transfers the tape holds two synthetic binance:BTCUSDT trades (the sample has no market
data): one before its first WBTC transfer, which prices them, and one after its last, which takes the
instrument's clock past them. Its other imported transfers are stablecoins (USDC, DAI, USDT), priced at 1.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from coattail.reference import from_tape, run_reference
from coattail.run.outputs import DQ_COLUMNS, SPREAD_COLUMNS, RunOutputs
from coattail.validate.agreement import compare_with_reference
from core.tape import Tape, TapeWriter, tape_schema
from pipeline.config import Config, RuntimeSettings
from pipeline.jobs.loader import load_tape
from pipeline.jobs.reprocessor import reprocess
from pipeline.runner import PipelineRunner
from pipeline.sinks.iceberg import IcebergSink
from pipeline.sinks.memory import MemoryAlertSink, MemoryTableSink
from pipeline.testkit import small_config, trade
from replay.readers import import_files

pytestmark = pytest.mark.spark
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "onchain" / (
    "export-address-token-0x003dc32fe920a4aaeed12dc87e145f030aa753f3.csv"
)


def _config(keyed_state: str) -> Config:
    return small_config(**{
        "modules": ["MOD-004", "MOD-010"], "spark.keyed_state": keyed_state,
        "settings.MOD-010.default_threshold_usd": 1_000, "settings.MOD-010.thresholds_usd": {},
    })


@pytest.fixture(scope="module")
def tape(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("onchain")
    import_files([SAMPLE], root / "imported")
    imported = Tape.open(root / "imported")
    transfers = imported.read("transfer")
    btc = [t for t in transfers.to_pylist() if t["asset"] == "BTC"]
    first, last = min(t["ts_event"] for t in btc), max(t["ts_event"] for t in btc)
    seq = transfers.num_rows
    trades = [{**trade(1, 18_000.0, 0.5, first - 1_000_000)[1], "seq": seq},
              {**trade(2, 19_000.0, 0.5, last + 1_000_000)[1], "seq": seq + 1}]
    with TapeWriter(root / "tape") as w:
        w.write("trade", pa.Table.from_pylist(trades, schema=tape_schema("trade")))
        w.write("transfer", transfers)
        w.close(source="etherscan-csv+synthetic")
    return root / "tape"


def _outputs(tables: MemoryTableSink, records_in: int, valid: int) -> RunOutputs:
    return RunOutputs(
        alerts=tables.read("alerts"), dq=pl.DataFrame(tables.read("dq_metrics")).select(list(DQ_COLUMNS)),
        spread_metrics=pl.DataFrame(schema=SPREAD_COLUMNS), records_in=records_in, valid=valid,
    )


@pytest.mark.parametrize("keyed_state", ["driver", "state_store"])
def test_the_real_sample_replays_and_agrees_with_the_reference(
    spark: object, tape: Path, tmp_path: Path, keyed_state: str
) -> None:
    config = _config(keyed_state)
    reference = run_reference(from_tape(Tape.open(tape)), config)
    kinds = {a["kind"] for a in reference.alert_rows()}
    assert {"exchange_outflow", "whale_transfer"} <= kinds  # WBTC from Binance's wallet; stablecoins
    tables, alerts = MemoryTableSink(), MemoryAlertSink()
    runner = PipelineRunner(config, checkpoint=tmp_path / "c", source=tape, spark=spark,  # type: ignore[arg-type]
                            table_sinks=[tables], alert_sinks=[alerts], max_records_per_batch=7)
    progress = runner.run(until_idle=True, timeout=300)
    assert progress.records_in == reference.records_in
    agreement = compare_with_reference(_outputs(tables, reference.records_in, reference.valid), reference)
    assert agreement.ok, agreement.to_dict()
    assert agreement.pipeline_alerts == len(reference.alert_rows()) > 0


@pytest.mark.parametrize("shuffle", [False, True])
def test_the_reprocessor_over_loaded_transfers_agrees_with_the_reference(
    spark: object, tape: Path, tmp_path: Path, shuffle: bool
) -> None:
    config = _config("driver").model_copy(update={"runtime": RuntimeSettings(state_dir=tmp_path / "state")})
    sink = IcebergSink(config)
    load_tape(tape, sink)
    manifest = Tape.open(tape).manifest
    result = reprocess(
        spark, config, modules=["MOD-004", "MOD-010"], start_us=manifest.start_us,  # type: ignore[arg-type]
        end_us=manifest.end_us + 1, name="onchain", sink=sink, write=False, shuffle=shuffle,
    )
    reference = run_reference(from_tape(Tape.open(tape)), config)
    outputs = RunOutputs(
        alerts=result.tables["alerts"], dq=pl.DataFrame(result.tables["dq_metrics"]).select(list(DQ_COLUMNS)),
        spread_metrics=pl.DataFrame(schema=SPREAD_COLUMNS), records_in=reference.records_in,
        valid=reference.valid,
    )
    agreement = compare_with_reference(outputs, reference)
    assert agreement.ok and agreement.pipeline_alerts > 0, agreement.to_dict()
