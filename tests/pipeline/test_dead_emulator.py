"""The emulator dies under the sinks and the source: the error names the service, the endpoint and what
to do, instead of a raw botocore traceback (issue 23). Real moto, killed for real."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import PipelineError, SinkError
from infra import emulator
from pipeline.runner import _cause
from pipeline.testkit import T0, run_engine, small_config, trade
from tests.pipeline.sinks.test_sink_contract import make_dynamo_sink

pytestmark = pytest.mark.integration


def test_dynamodb_sink_names_the_dead_endpoint_and_what_to_do(tmp_path: Path) -> None:
    moto = emulator.start("moto", tmp_path)
    sink = make_dynamo_sink(moto.endpoint)
    alerts = run_engine(small_config(), [trade(1, 50_000.0, 30.0, T0)])[0].alerts
    assert alerts.num_rows
    emulator.server_process("moto", tmp_path).stop()
    try:
        with pytest.raises(SinkError) as info:
            sink.write_alerts(alerts)
    finally:
        sink.close()
    message = str(info.value)
    assert f"DynamoDB at {moto.endpoint} is unreachable" in message
    assert "`coattail status`" in message and "`coattail up`" in message


def test_kinesis_source_names_the_dead_endpoint_and_what_to_do(tmp_path: Path) -> None:
    from pipeline.aws import client
    from pipeline.config import RuntimeSettings
    from pipeline.source.kinesis_reader import KinesisStreamReader

    moto = emulator.start("moto", tmp_path)
    client("kinesis", RuntimeSettings(aws_endpoint=moto.endpoint)).create_stream(
        StreamName="dies", ShardCount=1
    )
    reader = KinesisStreamReader({"stream": "dies", "endpoint": moto.endpoint})
    reader.latestOffset()
    emulator.server_process("moto", tmp_path).stop()
    with pytest.raises(PipelineError) as info:
        reader.latestOffset()
    assert f"Kinesis at {moto.endpoint} is unreachable while reading shard" in str(info.value)


def test_the_query_failure_shows_our_error_line_not_the_py4j_preamble() -> None:
    """What Spark hands back when a foreachBatch or a Python source raised: our error is deep inside."""
    text = (
        "An exception was raised by the Python Proxy. Return Message: Traceback (most recent call last):\n"
        '  File "/x/pipeline/source/kinesis_reader.py", line 170, in latestOffset\n'
        "    records, caught_up, done = self._fetch(shard_id, start, share)\n"
        "core.errors.PipelineError: Kinesis at http://127.0.0.1:5000 is unreachable while reading shard "
        "shardId-000000000000 of stream 's' (Could not connect): `coattail status` shows the stack\n"
    )
    assert _cause(text).startswith("PipelineError: Kinesis at http://127.0.0.1:5000 is unreachable")
