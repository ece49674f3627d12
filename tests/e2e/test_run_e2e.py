"""Whole runs: tape -> replay -> Kinesis (moto) -> Spark pipeline -> Iceberg + DynamoDB -> validation.

Real parts only: the session's moto server, the session's Spark, pyiceberg on SQLite. Each run is
judged against the tape's labels, the replay's fault labels and the independent reference.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from coattail.cli import app
from coattail.diff import diff_outputs
from coattail.run.orchestrate import RunRequest, RunResult, execute
from coattail.run.outputs import RunOutputs
from infra.run_resources import stream_names
from pipeline.config import ConfigLoader
from pipeline.detectors.whale import WhaleSettings
from replay.readers.importer import import_files
from tests.conftest import REAL_TAPES
from tests.e2e.whale_tapes import whale_day

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.spark]

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "golden"
FAULTS = GOLDEN / "whale-day-30m.faults.yaml"
RAISED_BTC = 2_000_000.0


@pytest.fixture(scope="module")
def whale_tape(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tapes") / "whale-day"
    return whale_day(out, symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"), exchanges=("binance", "coinbase"),
                     minutes=30, seed=7, scale=0.1)


@pytest.fixture(scope="module")
def synthetic_run(stack_env: Path, whale_tape: Path, spark: Any) -> RunResult:
    request = RunRequest(
        tapes=(whale_tape,),
        faults=FAULTS,
        runs_root=stack_env,
        name="synthetic",
        golden=GOLDEN / "whale-day-30m.json",
    )
    return execute(request, spark=spark)


def test_synthetic_run_hits_every_label_and_agrees_with_the_reference(synthetic_run: RunResult) -> None:
    s = synthetic_run.judgement.summary
    v = synthetic_run.judgement.validation
    assert v["labels"]["ok"], [r["detail"] for r in v["labels"]["results"] if not r["hit"]]
    assert v["reference"]["ok"], v["reference"]
    assert v["golden"]["ok"], v["golden"]
    assert s["records_in"] == s["events"] > 15_000
    kinds = {r["label"]["kind"] for r in v["labels"]["results"]}
    assert {"whale", "volume_spike", "duplicate", "late_event", "malformed"} <= kinds
    assert s["alerts_by_detector"]["MOD-001"] == 4
    assert s["scores"]["MOD-001"] == {"precision": 1.0, "recall": 1.0, "alerts": 4, "labels": 4}
    assert s["quarantined"] > 0  # the corrupt payloads
    run = synthetic_run.run
    counts = run.read_json("run.json")["counts"]
    assert counts["dynamodb_alerts"] == s["alerts"]  # every alert once in DynamoDB too
    for name in (
        "config.json",
        "tapes.json",
        "versions.json",
        "labels.json",
        "summary.json",
        "report.html",
        "pipeline/alerts.parquet",
        "reference/alerts.parquet",
        "metrics/throughput.parquet",
        "metrics/latency.json",
    ):
        assert run.has(name), name
    assert synthetic_run.ok
    # every event measured by stage (at max speed as queueing), every batch's rows committed
    latency = s["latency_ms"]
    assert latency["measured"] and latency["queueing"] and latency["headline"] == {}
    stages = latency["stages"]
    assert s["valid"] <= stages["results"]["count"] <= s["records_in"]
    assert stages["freshness"]["count"] == stages["trigger"]["count"] == stages["results"]["count"]
    assert stages["freshness"]["p50"] >= stages["results"]["p50"]
    assert stages["alert"]["count"] == s["alerts"]
    assert run.read_json("metrics/latency.json")["unmeasured_batches"] == 0
    batches = pl.read_parquet(run.path / "metrics" / "batches.parquet")
    assert batches["committed_us"].null_count() == 0
    assert (batches["results_us"] >= batches["started_us"]).all()


def test_a_run_on_a_shared_stack_removes_its_own_resources(
    synthetic_run: RunResult, aws_endpoint: str
) -> None:
    """Defect 6 of issue 23: the run's stream, alerts table and namespace do not outlive it."""
    from pipeline.aws import client
    from pipeline.config import Config, RuntimeSettings
    from pipeline.sinks.iceberg import load_catalog

    config = Config.model_validate(synthetic_run.run.read_json("config.json"))
    runtime = RuntimeSettings(aws_endpoint=aws_endpoint, state_dir=config.runtime.state_dir)
    assert config.kinesis.stream not in stream_names(client("kinesis", runtime))
    assert config.dynamodb.alerts_table not in client("dynamodb", runtime).list_tables()["TableNames"]
    namespaces = load_catalog(runtime, config.storage.warehouse_bucket).list_namespaces()
    assert (config.storage.namespace,) not in namespaces


def test_a_run_missing_an_alert_fails_validation(synthetic_run: RunResult, tmp_path: Path) -> None:
    broken = tmp_path / synthetic_run.run.run_id
    shutil.copytree(synthetic_run.run.path, broken, ignore=shutil.ignore_patterns("checkpoint"))
    alerts = pq.read_table(broken / "pipeline" / "alerts.parquet")
    whale = alerts.column("detector").to_pylist().index("MOD-001")
    kept = alerts.take([i for i in range(alerts.num_rows) if i != whale])
    pq.write_table(kept, broken / "pipeline" / "alerts.parquet")
    result = CliRunner().invoke(app, ["validate", str(broken)])
    assert result.exit_code == 1, result.output
    assert "missed" in result.output
    assert "validation failed" in result.output
    intact = CliRunner().invoke(app, ["validate", str(synthetic_run.run.path)])
    assert intact.exit_code == 0, intact.output


def test_diff_of_two_thresholds_shows_exactly_the_expected_change(
    synthetic_run: RunResult, stack_env: Path, whale_tape: Path, spark: Any, tmp_path: Path
) -> None:
    base = ConfigLoader().load("small", env={})
    thresholds = {**base.settings_of(WhaleSettings).thresholds_usd, "BTCUSDT": RAISED_BTC}
    raised = execute(
        RunRequest(
            tapes=(whale_tape,),
            faults=FAULTS,
            runs_root=stack_env,
            name="raised",
            overrides={"settings.MOD-001.thresholds_usd": thresholds},
        ),
        spark=spark,
    )
    a = RunOutputs.load(synthetic_run.run.path / "pipeline")
    b = RunOutputs.load(raised.run.path / "pipeline")
    btc_whales = [r for r in a.alert_rows() if r["detector"] == "MOD-001" and r["symbol"] == "BTCUSDT"]
    expect_vanished = {r["alert_id"] for r in btc_whales if r["value"] < RAISED_BTC}
    expect_changed = {r["alert_id"] for r in btc_whales if r["value"] >= RAISED_BTC}
    assert expect_vanished and expect_changed
    diff = diff_outputs(a, b)
    totals = diff.totals()
    assert totals == {
        "appeared": 0,
        "vanished": len(expect_vanished),
        "changed": len(expect_changed),
        "unchanged": a.alerts.num_rows - len(btc_whales),
    }
    groups = diff.to_dict()["groups"]
    assert [(g["detector"], g["symbol"]) for g in groups] == [("MOD-001", "BTCUSDT")]
    assert {r["alert_id"] for r in groups[0]["vanished"]} == expect_vanished
    assert {r["alert_id"] for r in groups[0]["changed"]} == expect_changed
    for change in groups[0]["changed"]:
        assert change["fields"]["threshold"] == {"a": 1_000_000.0, "b": RAISED_BTC}
    cli = CliRunner().invoke(app, ["diff", str(synthetic_run.run.path), str(raised.run.path)])
    assert cli.exit_code == 0, cli.output
    assert f"vanished {len(expect_vanished)}" in cli.output


def test_real_tardis_tape_agrees_with_the_reference(stack_env: Path, spark: Any, tmp_path: Path) -> None:
    tape = tmp_path / "tardis"
    import_files(
        [REAL_TAPES / "tardis" / "tardis_trades.csv", REAL_TAPES / "tardis" / "tardis_quotes.csv"], tape
    )
    # A lower BTCUSDT threshold makes MOD-001 fire on this real sample, so agreement covers every module.
    result = execute(
        RunRequest(
            tapes=(tape,),
            runs_root=stack_env,
            name="tardis",
            overrides={"settings.MOD-001.thresholds_usd": {"BTCUSDT": 100_000.0}},
            golden=GOLDEN / "tardis-btcusdt-100k.json",
        ),
        spark=spark,
    )
    v = result.judgement.validation
    assert v["reference"]["ok"], v["reference"]
    assert v["golden"]["ok"], v["golden"]
    s = result.judgement.summary
    assert s["records_in"] == 19_998
    assert s["alerts_by_detector"].get("MOD-001", 0) > 0 and s["alerts_by_detector"].get("MOD-002", 0) > 0
    assert v["reference"]["reference_alerts"] == s["alerts"]


def test_small_micro_batches_and_more_shards_give_the_same_alerts(
    synthetic_run: RunResult, stack_env: Path, whale_tape: Path, spark: Any
) -> None:
    """Streaming state across many micro-batches and four shards: still the reference's (and the
    one-batch run's) alerts, DQ counts and spread metrics."""
    small = execute(
        RunRequest(
            tapes=(whale_tape,),
            faults=FAULTS,
            runs_root=stack_env,
            name="small-batches",
            overrides={"spark.max_records_per_batch": 2_500, "kinesis.shards": 4},
            golden=GOLDEN / "whale-day-30m.json",
        ),
        spark=spark,
    )
    v = small.judgement.validation
    assert v["reference"]["ok"], v["reference"]
    assert v["golden"]["ok"], v["golden"]
    assert v["labels"]["ok"]
    assert small.run.read_json("run.json")["counts"]["batches"] >= 3  # the bound counts Kinesis records
    assert diff_outputs(
        RunOutputs.load(synthetic_run.run.path / "pipeline"), RunOutputs.load(small.run.path / "pipeline")
    ).empty


def test_flash_crash_spreads_and_crossed_book_agree_with_the_reference(
    stack_env: Path, spark: Any, tmp_path: Path
) -> None:
    """MOD-003 end to end: spread blow-outs and a crossed book, labelled, and the same as the reference."""
    from sim.generator import GenerateSpec, generate
    from sim.scenario import load_scenario

    tape = tmp_path / "flash-crash"
    generate(
        GenerateSpec(
            scenario=load_scenario("flash-crash"),
            symbols=("BTCUSDT", "ETHUSDT"),
            exchanges=("binance",),
            start_us=1_767_225_600_000_000,
            duration_us=40 * 60 * 1_000_000,
            seed=5,
            scale=0.1,
        ),
        ConfigLoader().load("small", env={}),
        tape,
    )
    result = execute(RunRequest(tapes=(tape,), runs_root=stack_env, name="flash-crash"), spark=spark)
    v = result.judgement.validation
    assert v["labels"]["ok"], [r["detail"] for r in v["labels"]["results"] if not r["hit"]]
    assert v["reference"]["ok"], v["reference"]
    kinds = {a["kind"] for a in RunOutputs.load(result.run.path / "pipeline").alert_rows()}
    assert {"spread_blowout", "crossed_book"} <= kinds
    spread = RunOutputs.load(result.run.path / "pipeline").spread_metrics
    assert spread.height > 0  # compared window by window with the reference above


def test_dirty_feed_data_quality_end_to_end(stack_env: Path, spark: Any, tmp_path: Path) -> None:
    """MOD-004 end to end: duplicates, an id gap, malformed records (quarantine), a feed gap, late and
    reordered deliveries, each labelled by the generator or the replay and counted by the pipeline."""
    from sim.generator import GenerateSpec, generate
    from sim.scenario import load_scenario

    tape = tmp_path / "dirty-feed"
    generate(
        GenerateSpec(
            scenario=load_scenario("dirty-feed"),
            symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"),
            exchanges=("binance",),
            start_us=1_767_225_600_000_000,
            duration_us=30 * 60 * 1_000_000,
            seed=3,
            scale=0.1,
        ),
        ConfigLoader().load("small", env={}),
        tape,
    )
    result = execute(RunRequest(tapes=(tape,), runs_root=stack_env, name="dirty-feed"), spark=spark)
    v = result.judgement.validation
    assert v["labels"]["ok"], [r["detail"] for r in v["labels"]["results"] if not r["hit"]]
    assert v["reference"]["ok"], v["reference"]
    reasons = {r["label"]["reason"] for r in v["labels"]["results"] if r["label"]["expect"] == "dq"}
    assert {"DUPLICATE_ID", "TRADE_ID_GAP", "LATE_EVENT", "STALE_FEED"} <= reasons
    assert result.judgement.summary["quarantined"] > 0


def test_the_production_path_through_websockets_gives_the_direct_runs_alerts(
    stack_env: Path, spark: Any, tmp_path: Path
) -> None:
    """tape -> the replay's WebSocket server -> the producer -> Kinesis -> pipeline: the same alerts as
    the replay putting on Kinesis itself, on the real Tardis sample (USD-M futures trades and quotes)."""
    tape = tmp_path / "tardis"
    import_files(
        [REAL_TAPES / "tardis" / "tardis_trades.csv", REAL_TAPES / "tardis" / "tardis_quotes.csv"], tape
    )
    overrides = {"settings.MOD-001.thresholds_usd": {"BTCUSDT": 100_000.0}}
    runs = {
        via: execute(
            RunRequest(
                tapes=(tape,), runs_root=stack_env, name=f"tardis-{via}", overrides=overrides, via=via
            ),
            spark=spark,
        )
        for via in ("kinesis", "ws")
    }
    direct, through = (RunOutputs.load(runs[v].run.path / "pipeline") for v in ("kinesis", "ws"))
    assert direct.alerts.num_rows > 0
    assert diff_outputs(direct, through).empty
    assert runs["ws"].judgement.validation["reference"]["ok"]
    counts = runs["ws"].run.read_json("run.json")["counts"]
    assert counts["producer_events_out"] == counts["records_in"] == 19_998
    stage = runs["ws"].judgement.summary["stage_latency_ms"]["producer: exchange send -> Kinesis put"]
    assert stage["count"] == 19_998 and 0 < stage["p50"] <= stage["p99"]
    assert "Stages before the pipeline" in (runs["ws"].run.path / "report.html").read_text()
