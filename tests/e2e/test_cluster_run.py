"""The packaged job on a Spark standalone cluster gives local mode's tables and alerts, in both keyed modes.

Real parts only: the session's job package (wheel + venv-pack'd environment), the session's cluster (a
master and two workers, separate JVMs, started with ``spark-class``), spark-submit, moto, pyiceberg on
SQLite. A medium-day tape exercises every module of the medium tier. The local run uses the session's
Spark; each cluster run submits the package, whose driver and executors run the packed environment.
Set ``COATTAIL_CLUSTER_FULL=1`` for the full version (a longer, denser tape).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from coattail.run.judge import pipeline_outputs
from coattail.run.orchestrate import RunRequest, RunResult, execute
from coattail.validate.agreement import compare_with_reference
from infra.package import Package
from tests.conftest import REPO
from tests.e2e.whale_tapes import whale_day

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.spark]

FULL = os.environ.get("COATTAIL_CLUSTER_FULL") == "1"


@pytest.fixture(scope="module")
def medium_tape(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """medium-day: whales, a volume spike, sliced parents, one-sided minutes, a basis dislocation."""
    return whale_day(
        tmp_path_factory.mktemp("tapes") / "medium-day", symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"),
        exchanges=("binance", "coinbase"), minutes=60 if FULL else 30, seed=7, scale=0.3 if FULL else 0.05,
        scenario="medium-day",
    )  # fmt: skip


@pytest.fixture(scope="module")
def local_run(stack_env: Path, medium_tape: Path, spark: Any) -> RunResult:
    """The tape through the pipeline in this process (local mode), the result to match."""
    request = RunRequest(tapes=(medium_tape,), tier="medium", runs_root=stack_env, name="local")
    return execute(request, spark=spark)


@pytest.mark.parametrize("keyed_state", ["driver", "state_store"])
def test_the_packaged_job_on_the_cluster_gives_local_mode_s_tables_and_alerts(
    keyed_state: str,
    local_run: RunResult,
    spark_cluster: tuple[Path, str],
    job_package: Package,
    stack_env: Path,
    medium_tape: Path,
) -> None:
    cluster_dir, master = spark_cluster
    request = RunRequest(
        tapes=(medium_tape,), tier="medium", runs_root=stack_env, name=f"cluster-{keyed_state}",
        overrides={"spark.keyed_state": keyed_state}, cluster=master, package=job_package.path,
    )  # fmt: skip
    result = execute(request)

    assert local_run.ok and result.ok, (local_run.judgement, result.judgement)
    ours, local = pipeline_outputs(result.run), pipeline_outputs(local_run.run)
    assert ours.alerts.num_rows > 0 and local.records_in == ours.records_in
    agreement = compare_with_reference(ours, local)
    assert agreement.ok, agreement.to_dict()
    # medium-day makes every module that alerts on it alert (MOD-003 and MOD-004 write metric tables,
    # compared above, and alert only on anomalies the tape has none of)
    alerting = {"MOD-001", "MOD-002", "MOD-005", "MOD-006", "MOD-007"}
    assert {a["detector"] for a in ours.alert_rows()} == alerting

    # the job ran in the requested mode, from the package: the packed interpreter and the wheel's
    # pipeline on the driver and on every executor, never this checkout's
    report = json.loads((result.run.path / "job" / "report" / "progress.json").read_text())
    assert report["state"] == "stopped" and report["keyed_state"] == keyed_state
    where = report["where"]
    assert where["executors"]  # those that ran the probe's tasks
    for process in [where["driver"], *where["executors"]]:
        assert process["python"].endswith("/environment/bin/python")
        assert "/environment/lib/python3.11/site-packages/pipeline/" in process["pipeline"]
        assert not process["pipeline"].startswith(str(REPO / "pipeline"))
    for executor in where["executors"]:
        assert executor["python"].startswith(str(cluster_dir))
    # and every executor of the application, on both workers, unpacked the package's environment
    app = Path(where["executors"][0]["python"]).parents[3].name
    executor_dirs = list(cluster_dir.glob(f"cluster/work-*/{app}/*"))
    assert {d.parent.parent.name for d in executor_dirs} == {"work-1", "work-2"}
    assert all((d / "environment" / "bin" / "python").exists() for d in executor_dirs)
