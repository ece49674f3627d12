"""``validate``, ``diff``, ``golden update`` and ``runs`` on run directories made without the stack.

The run directories hold the reference's outputs as the "pipeline" outputs (the e2e tests make real
ones); what is tested here is the command line: exit codes, messages, files written.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from typer.testing import CliRunner

from coattail.cli import app
from coattail.reference import from_tape, run_reference
from coattail.run.outputs import RunOutputs
from coattail.run.rundir import RunDir
from core.labels import Label
from pipeline.config import Config
from tests.coattail.coattail_tapekit import at, make_tape

runner = CliRunner()


def make_run(root: Path, config: Config, *, drop_whale: bool = False) -> RunDir:
    tape = make_tape(
        root / "tapes" / f"t-{drop_whale}",
        trades=[(1, "BTCUSDT", 1, 50_000.0, 30.0, "buy"), (2, "ETHUSDT", 1, 2_500.0, 300.0, "sell")],
        labels=[
            Label(
                kind="whale",
                detector="MOD-001",
                exchange="binance",
                symbol="BTCUSDT",
                start_us=at(1),
                end_us=at(1),
            )
        ],
    )
    outputs = run_reference(from_tape(tape), config)
    run = RunDir.create(root, "cli")
    run.write_json("run.json", {"tapes": [str(tape.path)], "counts": {"records_in": 2, "valid": 2}})
    run.write_json("config.json", config.model_dump(mode="json"))
    run.write_json("labels.json", [lb.model_dump(mode="json") for lb in tape.manifest.labels])
    outputs.save(run.path / "reference")
    rows = [a for a in outputs.alert_rows() if not (drop_whale and a["symbol"] == "BTCUSDT")]
    RunOutputs(
        pa.Table.from_pylist(rows, schema=outputs.alerts.schema), outputs.dq, outputs.spread_metrics, 2, 2
    ).save(run.path / "pipeline")
    return run


def test_validate_passes_then_fails_on_a_missing_alert(tmp_path: Path, config: Config) -> None:
    good = make_run(tmp_path / "a", config)
    result = runner.invoke(app, ["validate", str(good.path)])
    assert result.exit_code == 0, result.output
    assert "validation passed" in result.output
    assert good.has("report.html") and good.has("summary.json")
    bad = make_run(tmp_path / "b", config, drop_whale=True)
    result = runner.invoke(app, ["validate", str(bad.path)])
    assert result.exit_code == 1
    assert "missed whale MOD-001 binance:BTCUSDT" in result.output
    assert "only_reference" in result.output  # the reference still has the alert the pipeline lost


def test_golden_update_then_validate_against_it(tmp_path: Path, config: Config) -> None:
    run = make_run(tmp_path / "a", config)
    golden = tmp_path / "golden" / "t.json"
    result = runner.invoke(app, ["golden", "update", str(golden), "--run", str(run.path)])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["validate", str(run.path), "--golden", str(golden)]).exit_code == 0
    other = make_run(tmp_path / "b", config, drop_whale=True)
    result = runner.invoke(app, ["validate", str(other.path), "--golden", str(golden)])
    assert result.exit_code == 1
    assert "differs" in result.output and "missing" in result.output
    both = runner.invoke(app, ["golden", "update", str(golden)])
    assert both.exit_code == 1 and "exactly one of --run RUN or --tape TAPE" in both.output


def test_diff_and_runs(tmp_path: Path, config: Config) -> None:
    a = make_run(tmp_path, config)
    b = make_run(tmp_path, config, drop_whale=True)
    result = runner.invoke(app, ["diff", str(a.path), str(b.path)])
    assert result.exit_code == 0, result.output
    assert "vanished 1" in result.output and "unchanged 1" in result.output
    runner.invoke(app, ["validate", str(a.path)])
    listed = runner.invoke(app, ["runs", "--runs", str(tmp_path)])
    assert listed.exit_code == 0
    assert a.run_id in listed.output and "pass" in listed.output
    assert "unfinished" in listed.output  # b was never judged
    missing = runner.invoke(app, ["diff", str(a.path), str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "not a run directory" in missing.output
