"""The WebSocket target with the production connectors (real websocket clients): events in = events out."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.connectors.base import BaseConnector, Event
from pipeline.connectors.binance_ws import BinanceConnector
from pipeline.connectors.coinbase import parse_coinbase_message
from pipeline.connectors.coinbase_ws import CoinbaseConnector
from replay.engine import Replay
from replay.faults import DisconnectFault, FaultSpec
from replay.targets.memory import MemoryTarget
from replay.targets.websocket import WebSocketTarget
from replay.testkit import write_tape


def _coinbase_tape(real_tapes: Path, path: Path) -> Path:
    """The real Coinbase matches of the sample recording, as a tape."""
    rows = []
    for line in (real_tapes / "coinbase-ws" / "COINBASE.ws.28.0").read_text().splitlines():
        _, _, payload = line.partition(": ")
        if '"type":"match"' in payload:
            rows += [row for _, row in parse_coinbase_message(json.loads(payload), None)]
    rows.sort(key=lambda r: r["ts_event"])
    write_tape(path, rows, [], source="coinbase-ws")
    return path


class _Connectors:
    """Runs connectors on their own event loop thread and collects what they sink."""

    def __init__(self, connectors: list[BaseConnector], received: list[Event]) -> None:
        self.connectors = connectors
        self.received = received
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(asyncio.gather(*(c.run(self.stop) for c in self.connectors)))

    def __enter__(self) -> _Connectors:
        self.thread.start()
        return self

    def __exit__(self, *args: Any) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(timeout=10)


def _wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _norm(kind: str, row: dict[str, Any]) -> str:
    keep = {k: v for k, v in row.items() if k not in ("ts_recv", "ts_sent")}
    if kind == "quote" and row["exchange"] == "binance":
        keep.pop("ts_event")  # a spot bookTicker has no time on Binance either
    return json.dumps([kind, keep], sort_keys=True)


@pytest.mark.parametrize("disconnects", [False, True])
def test_connectors_receive_exactly_the_replayed_events(
    tmp_path: Path, disconnects: bool, tardis_tape: Callable[[Path, int], Path], real_tapes: Path
) -> None:
    futures = tardis_tape(tmp_path / "futures", 300)
    coinbase = _coinbase_tape(real_tapes, tmp_path / "coinbase")
    spot_rows = [
        {
            "exchange": "binance",
            "symbol": "ETHUSDT",
            "trade_id": 10 + i,
            "price": 2500.5 + i,
            "qty": 0.125,
            "side": "sell" if i % 3 else "buy",
            "ts_event": 1582329602000000 + i * 1000,
            "ts_recv": None,
        }
        for i in range(50)
    ]
    spot_quotes = [
        {
            "exchange": "binance",
            "symbol": "ETHUSDT",
            "bid_px": 2500.0,
            "bid_qty": 1.5,
            "ask_px": 2500.25,
            "ask_qty": 2.0,
            "update_id": 7 + i,
            "ts_event": 1582329602000500 + i * 1000,
            "ts_recv": None,
        }
        for i in range(20)
    ]
    spot = tmp_path / "spot"
    write_tape(spot, spot_rows, spot_quotes)
    tapes = [futures, coinbase, spot]
    products = sorted({r["symbol"] for r in _read(coinbase)})

    received: list[Event] = []
    lock = threading.Lock()

    def sink(events: list[Event]) -> None:
        with lock:
            received.extend(events)

    target = WebSocketTarget(wait_for_clients=3, client_timeout_s=20)
    faults = FaultSpec(disconnect=DisconnectFault(every=250, pause_ms=50)) if disconnects else None
    target.start()
    try:
        connectors: list[BaseConnector] = [
            BinanceConnector(["BTCUSDT"], sink, exchange="binance-futures", base_url=target.url),
            BinanceConnector(["ETHUSDT"], sink, exchange="binance", base_url=target.url),
            CoinbaseConnector(products, sink, url=target.url),
        ]
        with _Connectors(connectors, received):
            summary = Replay(tapes, target, faults=faults, batch_rows=128).run()
            expected = MemoryTarget()
            Replay(tapes, expected).run()
            _wait_for(lambda: len(received) >= summary.sent)
            time.sleep(0.2)  # nothing more may arrive
    finally:
        target.close()
    want = sorted(_norm(k, r) for k, r in expected.events())
    got = sorted(_norm(k, r) for k, r in received)
    assert got == want
    assert len(received) == 300 + 300 + 97 + 70
    assert all(r["ts_recv"] is not None for _, r in received)
    if disconnects:
        assert sum(c.reconnects for c in connectors) >= 3
        assert {lb.kind for lb in summary.labels} == {"disconnect"}


def _read(tape: Path) -> list[dict[str, Any]]:
    from core.tape import Tape

    return Tape.open(tape).read("trade").to_pylist()  # type: ignore[no-any-return]


def test_ws_target_refuses_non_loopback() -> None:
    from core.errors import ReplayError

    with pytest.raises(ReplayError, match="loopback"):
        WebSocketTarget(host="0.0.0.0")
