"""``coattail replay``: targets, faults and labels, clear one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from coattail.cli import app
from pipeline.kpl import deaggregate
from replay.testkit import T0, write_tape

runner = CliRunner()


def _tape(path: Path, n: int = 50) -> Path:
    rows = [
        {
            "exchange": "binance",
            "symbol": "BTCUSDT",
            "trade_id": i,
            "price": 100.0,
            "qty": 1.0,
            "side": "buy",
            "ts_event": T0 + i * 100_000,
            "ts_recv": None,
        }
        for i in range(n)
    ]
    write_tape(path, rows, [])
    return path


def _invoke(args: list[str], env: dict[str, Any] | None = None) -> Any:
    return runner.invoke(app, args, env={"COATTAIL_AWS_ENDPOINT": "", **(env or {})})


def test_stdout_target_writes_json_lines_with_a_window(tmp_path: Path) -> None:
    tape = _tape(tmp_path / "t")
    result = _invoke(
        [
            "replay",
            str(tape),
            "--target",
            "stdout",
            "--from",
            str(T0 + 1_000_000),
            "--to",
            "2024-08-09T00:00:02Z",
        ]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [x["trade_id"] for x in lines] == list(range(10, 20))


def test_faults_and_labels_out(tmp_path: Path) -> None:
    tape = _tape(tmp_path / "t", n=400)
    faults = tmp_path / "faults.yaml"
    faults.write_text("duplicates: {rate: 0.05}\ndrops: {rate: 0.05}\n")
    labels = tmp_path / "labels.json"
    result = _invoke(
        [
            "replay",
            str(tape),
            "--target",
            "memory",
            "--faults",
            str(faults),
            "--seed",
            "5",
            "--labels-out",
            str(labels),
        ]
    )
    assert result.exit_code == 0, result.output
    kinds = {x["kind"] for x in json.loads(labels.read_text())["labels"]}
    assert {"duplicate", "drop"} <= kinds
    assert "events sent" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["replay", "/nonexistent-tape", "--target", "memory"], "is not a tape"),
        (["replay", "{tape}", "--target", "memory", "--speed", "fast"], "speed 'fast'"),
        (["replay", "{tape}", "--target", "memory", "--from", "yesterday"], "--from 'yesterday'"),
        (["replay", "{tape}", "--target", "kinesis"], "no running stack"),
        (
            ["replay", "{tape}", "--target", "ws", "--wait-for", "1", "--client-timeout", "0.2"],
            "0 of 1 WebSocket clients subscribed",
        ),
    ],
)
def test_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    tape = _tape(tmp_path / "t")
    result = _invoke([a.format(tape=tape) for a in args], env={"COATTAIL_STATE_DIR": str(tmp_path / "state")})
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_ws_target_without_clients_when_told_not_to_wait(tmp_path: Path) -> None:
    result = _invoke(["replay", str(_tape(tmp_path / "t")), "--target", "ws", "--wait-for", "0"])
    assert result.exit_code == 0, result.output
    assert "/binance-futures" in result.output and "/coinbase" in result.output


@pytest.mark.integration
def test_kinesis_target_from_the_command_line(aws_endpoint: str, tmp_path: Path) -> None:
    tape = _tape(tmp_path / "t", n=120)
    client: Any = boto3.client(
        "kinesis",
        endpoint_url=aws_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_stream(StreamName="replay-cli", ShardCount=1)
    client.get_waiter("stream_exists").wait(StreamName="replay-cli", WaiterConfig={"Delay": 0.1})
    result = _invoke(
        ["replay", str(tape), "--target", "kinesis", "--speed", "100x", "--set", "kinesis.stream=replay-cli"],
        env={"COATTAIL_AWS_ENDPOINT": aws_endpoint},
    )
    assert result.exit_code == 0, result.output
    shard = client.list_shards(StreamName="replay-cli")["Shards"][0]["ShardId"]
    it = client.get_shard_iterator(StreamName="replay-cli", ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    records = client.get_records(ShardIterator=it, Limit=10_000)["Records"]
    ids = [json.loads(d)["trade_id"] for r in records for _, d in deaggregate(r["Data"])]
    assert ids == list(range(120))
    assert "lag p50 / p99 / max" in result.output
