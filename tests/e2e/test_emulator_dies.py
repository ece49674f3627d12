"""The emulator is SIGKILLed in the middle of a run (as a new user tried in issue 23): the run stops with
a message naming the service, the endpoint and what to do; ``coattail status`` shows the stack dead; what
survives on disk (the checkpoint, the Iceberg tables) is consistent."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from typer.testing import CliRunner

from coattail.cli import app
from coattail.run.orchestrate import RunRequest, execute
from core.errors import CoattailError
from infra import stack
from pipeline.config import Config, ConfigLoader, RuntimeSettings
from pipeline.sinks.base import BATCH_PROPERTY
from pipeline.sinks.iceberg import load_catalog
from pipeline.tables import QUOTES, TRADES
from tests.e2e.whale_tapes import whale_day

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.spark]


@pytest.fixture
def tape(tmp_path: Path) -> Path:
    return whale_day(tmp_path / "tape", symbols=("BTCUSDT",), exchanges=("binance", "coinbase"), minutes=25,
                     seed=5, scale=0.05)


def _commits(runs: Path) -> list[Path]:
    return [f for f in runs.glob("*/checkpoint/query/commits/*") if f.name.isdigit()]


def test_a_killed_emulator_stops_the_run_with_what_to_do(
    tape: Path, spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    base = ConfigLoader().load("small", env={})
    handle = stack.up(base.model_copy(update={"runtime": RuntimeSettings(state_dir=state)}))
    endpoint = handle.runtime.aws_endpoint
    assert endpoint is not None
    monkeypatch.setenv("COATTAIL_STATE_DIR", str(state))
    monkeypatch.delenv("COATTAIL_AWS_ENDPOINT", raising=False)
    runs = tmp_path / "runs"
    # paced, in small batches: the emulator dies while records are still flowing
    request = RunRequest(tapes=(tape,), runs_root=runs, name="dies", speed=15.0,
                         overrides={"spark.max_records_per_batch": 300})
    failure: list[BaseException] = []

    def run() -> None:
        try:
            execute(request, spark=spark)
        except BaseException as e:  # handed to the test thread
            failure.append(e)

    worker = threading.Thread(target=run)
    try:
        worker.start()
        deadline = time.monotonic() + 240
        while len(_commits(runs)) < 2 and time.monotonic() < deadline and worker.is_alive():
            time.sleep(0.2)
        assert len(_commits(runs)) >= 2, f"the pipeline never committed a batch: {failure}"
        pid = int((state / "moto.pid").read_text())
        psutil.Process(pid).kill()
        worker.join(timeout=300)
        assert not worker.is_alive(), "the run did not stop after the emulator died"
    finally:
        if worker.is_alive():
            worker.join(timeout=60)

    (error,) = failure
    assert isinstance(error, CoattailError), repr(error)
    message = str(error)
    assert endpoint in message and "unreachable" in message, message
    assert "`coattail status`" in message and "Traceback" not in message

    status = CliRunner().invoke(app, ["status"])
    assert status.exit_code == 1, status.output
    assert "dead" in status.output and "coattail down" in status.output

    # What survives is consistent: no row twice, and Iceberg holds no batch the checkpoint never planned.
    (run_dir,) = [p for p in runs.iterdir() if p.name.endswith("-dies")]
    config = Config.model_validate_json((run_dir / "config.json").read_text())
    offsets = run_dir / "checkpoint" / "query" / "offsets"
    planned = max(int(f.name) for f in offsets.iterdir() if f.name.isdigit())
    catalog = load_catalog(config.runtime, config.storage.warehouse_bucket)
    for table in (TRADES, QUOTES):
        handle_ = catalog.load_table(f"{config.storage.namespace}.{table.name}")
        rows = handle_.scan().to_arrow()
        keys = list(zip(*(rows.column(k).to_pylist() for k in table.key), strict=True))
        assert len(keys) == len(set(keys)), f"{table.name} holds a row twice"
        batches = [
            int(s.summary.additional_properties[BATCH_PROPERTY])
            for s in handle_.snapshots()
            if s.summary and BATCH_PROPERTY in s.summary.additional_properties
        ]
        assert batches == sorted(set(batches)) and all(b <= planned for b in batches), batches
    stack.down(state)
