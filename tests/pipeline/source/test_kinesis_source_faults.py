"""The Kinesis source behind the fault proxy (``infra.faultproxy``), 15 % of Kinesis calls throttled (at
most two in a row, within the retry budget), for both read paths (executor tasks, driver hand-over): the
one retry policy of ``pipeline.aws`` gets every call through, every event arrives once, nothing is lost
or written twice. (Heavier mixes of faults run in ``tests/e2e/test_fault_suite.py`` and ``make faults``.)"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from infra.faultproxy.server import FaultProxy
from infra.faultproxy.spec import ProxySpec
from pipeline.config import RuntimeSettings
from pipeline.sinks.memory import MemoryAlertSink, MemoryTableSink
from pipeline.testkit import alerts_of, run_engine
from tests.pipeline.source.test_kinesis_source import create_stream, events, put, runner, stream_config

pytestmark = [pytest.mark.spark, pytest.mark.integration]


@pytest.mark.parametrize("driver_read_max", [0, 20_000], ids=["executor-tasks", "driver-handover"])
def test_every_record_once_through_throttling_and_faults(
    spark: Any, aws_endpoint: str, tmp_path: Path, driver_read_max: int
) -> None:
    cfg = stream_config(aws_endpoint, tmp_path)
    kinesis = create_stream(cfg)
    items = events(0, 180)
    n = put(kinesis, cfg, items[:90], aggregated=True) + put(kinesis, cfg, items[90:], aggregated=False)
    spec = ProxySpec(seed=18, throttle=0.15)
    with FaultProxy(aws_endpoint, spec) as proxy:
        proxied = cfg.model_copy(update={
            "runtime": RuntimeSettings(aws_endpoint=proxy.endpoint, state_dir=tmp_path),
            "spark": cfg.spark.model_copy(update={"driver_read_max_records": driver_read_max}),
        })
        sinks = (MemoryTableSink(), MemoryAlertSink())
        pipeline = runner(proxied, tmp_path / "ck", spark, sinks, size=40)
        pipeline.start()
        try:
            # not ``wait_until_idle``: its three quiet polls in a row seldom fall between the triggers
            # whose calls sleep in the retry policy's backoff; every shard's reader at its tip, after
            # every record, says the same here
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not (
                pipeline.progress.records_in >= n and all(pipeline.progress.shards_caught_up.values())
            ):
                pipeline.check_alive()
                time.sleep(0.2)
            progress = pipeline.progress
        finally:
            pipeline.stop()
    assert progress.records_in == n == 180
    trades = sinks[0].read("trades")
    ids = sorted(zip(trades.column("symbol").to_pylist(), trades.column("trade_id").to_pylist(), strict=True))
    assert ids == sorted((i[1]["symbol"], i[1]["trade_id"]) for i in items if not isinstance(i, bytes))
    assert sorted(sinks[1].items) == list(alerts_of(run_engine(cfg, items))["alert_id"])
    assert proxy.injected["kinesis:throttle"] > 0
