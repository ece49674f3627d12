"""kinesis-mock serving Kinesis beside moto: loopback only, provisioned, strict sequence numbers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from infra import emulator, stack
from infra.processes import is_alive
from pipeline.aws import client
from pipeline.config import ConfigLoader, RuntimeSettings
from pipeline.tables import all_tables

pytestmark = [pytest.mark.integration, pytest.mark.kinesis_mock]


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """The (address, port) pairs ``pid`` listens on over TCP (IPv4 and IPv6), through psutil."""
    return {
        (conn.laddr.ip, conn.laddr.port)
        for conn in psutil.Process(pid).net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN
    }


@pytest.fixture
def mock_stack(tmp_path: Path) -> Iterator[stack.StackHandle]:
    config = ConfigLoader().load("small", env={})
    config = config.model_copy(update={"runtime": RuntimeSettings(state_dir=tmp_path / "state")})
    handle = stack.up(config, kinesis="kinesis-mock")
    yield handle
    stack.down(tmp_path / "state")


def test_kinesis_mock_listens_on_loopback_only(mock_stack: stack.StackHandle) -> None:
    pid = emulator.server_process("kinesis-mock", mock_stack.runtime.state_dir).running_pid()
    assert pid is not None
    addresses = listening_addresses(pid)
    assert len(addresses) == 2, f"the plain and the TLS listener, found {addresses}"
    assert {address for address, _ in addresses} == {"127.0.0.1"}


def test_kinesis_goes_to_kinesis_mock_the_rest_to_moto(mock_stack: stack.StackHandle) -> None:
    runtime = mock_stack.runtime
    kinesis_endpoint = runtime.service_endpoints["kinesis"]
    assert kinesis_endpoint != runtime.aws_endpoint
    # stream, alerts table, two buckets, Glue database, then every Iceberg table of the tier
    tables = all_tables(ConfigLoader().load("small", env={}))
    assert [r.state for r in mock_stack.resources] == ["created"] * (5 + len(tables))
    moto_only = RuntimeSettings(aws_endpoint=runtime.aws_endpoint)
    assert client("kinesis", moto_only).list_streams()["StreamNames"] == []
    assert client("kinesis", runtime).list_streams()["StreamNames"] == ["coattail-events"]
    assert client("dynamodb", runtime).list_tables()["TableNames"] == ["coattail-alerts"]


def test_round_trip_with_aws_style_sequence_numbers(mock_stack: stack.StackHandle) -> None:
    kinesis = client("kinesis", mock_stack.runtime)
    put = kinesis.put_record(StreamName="coattail-events", Data=b'{"v":1}', PartitionKey="coinbase:BTC-USD")
    assert len(put["SequenceNumber"]) == 56 and put["SequenceNumber"].isdigit()
    iterator = kinesis.get_shard_iterator(
        StreamName="coattail-events", ShardId=put["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator)["Records"]
    assert [(r["Data"], r["SequenceNumber"]) for r in records] == [(b'{"v":1}', put["SequenceNumber"])]


def test_status_and_down_cover_both_processes(mock_stack: stack.StackHandle) -> None:
    state_dir = mock_stack.runtime.state_dir
    report = stack.status(mock_stack.runtime)
    assert report.healthy
    assert [(p.kind, p.state) for p in report.processes] == [("moto", "running"), ("kinesis-mock", "running")]
    assert report.resources[0].state == "exists"
    pids = [p.pid for p in report.processes]
    done = stack.down(state_dir)
    assert [line.split(" (")[0] for line in done] == ["stopped moto", "stopped kinesis-mock"]
    assert all(pid is not None and not is_alive(pid) for pid in pids)
