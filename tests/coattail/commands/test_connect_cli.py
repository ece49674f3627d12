"""``coattail connect``: the producer as a command, against the replay's WebSocket server and the emulator."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from coattail.commands.connect import parse_subscriptions
from core.errors import ConfigError
from pipeline.config import default_config_dir
from pipeline.testkit import trade
from replay.engine import Replay
from replay.targets.websocket import WebSocketTarget
from replay.testkit import T0, write_tape
from tests.replay.test_kinesis import _read_back, _stream

N = 300


def test_symbols_go_to_every_exchange_or_to_the_one_named() -> None:
    assert parse_subscriptions("binance,coinbase", "BTCUSDT,coinbase:BTC-USD") == {
        "binance": ["BTCUSDT"],
        "coinbase": ["BTCUSDT", "BTC-USD"],
    }
    assert parse_subscriptions("binance", "binance:ETHUSDT") == {"binance": ["ETHUSDT"]}
    with pytest.raises(ConfigError, match="not among --exchanges"):
        parse_subscriptions("binance", "kraken:XBTUSD")
    with pytest.raises(ConfigError, match="nothing for coinbase"):
        parse_subscriptions("binance,coinbase", "binance:BTCUSDT")


@pytest.mark.integration
def test_sigterm_puts_everything_accepted_on_the_stream(aws_endpoint: str, tmp_path: Path) -> None:
    """The producer holds its events for a minute (``linger_ms``); SIGTERM must still put them all."""
    tape = tmp_path / "tape"
    write_tape(tape, [trade(i, 100.0 + i, 1.0, T0 + i * 1_000)[1] for i in range(1, N + 1)], [])
    stream = _stream(aws_endpoint, "connect-sigterm", shards=1)
    settings = yaml.safe_load((default_config_dir() / "producer.yaml").read_text())
    settings["batch"] = {"linger_ms": 60_000, "max_events": 10 * N}
    (tmp_path / "producer.yaml").write_text(yaml.safe_dump(settings))
    target = WebSocketTarget(wait_for_clients=1, client_timeout_s=60)
    target.start()
    command = [
        sys.executable, "-c", "from coattail.cli import app; app()", "connect",
        "--exchanges", "binance", "--symbols", "BTCUSDT",
        "--ws-url", f"binance={target.endpoint('binance')}",
        "--producer-config", str(tmp_path / "producer.yaml"),
        "--set", f"kinesis.stream={stream}",
    ]  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "COATTAIL_AWS_ENDPOINT": aws_endpoint, "HOME": str(tmp_path)}
    process = subprocess.Popen(
        command, cwd=Path(__file__).parents[3], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        Replay([tape], target).run()
        time.sleep(1.0)  # the frames are on the loopback socket; let the producer read them
        assert _read_back(aws_endpoint, stream) == {"shardId-000000000000": []}  # still held
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    rows = [row for rows in _read_back(aws_endpoint, stream).values() for _, row in rows]
    assert [r["trade_id"] for r in rows] == list(range(1, N + 1))
    assert f"out {N:,} events" in err
