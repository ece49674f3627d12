"""The CI fault suite: a small tape through the fault proxy (throttling, 5xx, resets, slow and lost
answers between every client and moto) ends with exactly the baseline run's rows and alerts.

The full suite (more seeds, heavier rates, AWS's Kinesis quotas) is ``coattail faults`` / ``make faults``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coattail.run.faultsuite import SUITES, run_fault_suite
from coattail.run.orchestrate import RunRequest
from tests.e2e.whale_tapes import whale_day

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.spark]


@pytest.fixture(scope="module")
def small_tape(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tapes") / "whale-25m"
    return whale_day(out, symbols=("BTCUSDT", "ETHUSDT"), exchanges=("binance", "coinbase"), minutes=25,
                     seed=3, scale=0.05)


def test_faults_between_every_client_and_the_emulator_lose_and_double_nothing(
    aws_endpoint: str, small_tape: Path, spark: Any, tmp_path: Path
) -> None:
    request = RunRequest(tapes=(small_tape,), runs_root=tmp_path / "runs", name="faults",
                         overrides={"spark.max_records_per_batch": 1_000})
    report = run_fault_suite(request, SUITES["ci"], aws_endpoint, tmp_path / "state", spark=spark)
    (run,) = report.runs
    injected = run.proxy["injected"]
    # every client met faults: the replay's puts, the source's reads, the DynamoDB sink
    for kind in ("throttle", "server_error", "reset", "lost_response"):
        assert injected.get(kind, 0) > 0, injected
    assert injected.get("kinesis:throttle", 0) + injected.get("kinesis:server_error", 0) > 0
    assert sum(v for k, v in injected.items() if k.startswith("dynamodb:")) > 0
    tallies = {t.table: t for t in run.tallies}
    assert tallies["trades"].baseline > 1_000 and tallies["alerts"].baseline > 0
    assert [(t.table, t.lost, t.duplicated) for t in run.tallies] == [
        (t.table, 0, 0) for t in run.tallies
    ], report.to_dict()
    assert run.alerts_changed == 0
    assert run.counts["dynamodb_alerts"] == run.baseline_counts["dynamodb_alerts"] == tallies["alerts"].rows
    assert report.ok
