"""The WebSocket target with real clients, changed only in their base URL: the production connectors and
independent open-source libraries (python-binance, copra) receive every event of the real captures."""

from __future__ import annotations

import asyncio
import collections
import gzip
import json
import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from binance import AsyncClient, BinanceSocketManager
from copra.websocket import Channel
from copra.websocket import Client as CopraClient

from core.errors import ReplayError
from core.tape import Tape
from pipeline.connectors._common import iso_to_us
from pipeline.connectors.base import BaseConnector, Event
from pipeline.connectors.binance import parse_binance_message
from pipeline.connectors.binance_ws import BinanceConnector
from pipeline.connectors.coinbase import parse_coinbase_message
from pipeline.connectors.coinbase_ws import CoinbaseConnector
from replay.engine import Replay
from replay.faults import DisconnectFault, FaultSpec
from replay.merge import TimeWindow
from replay.readers.importer import import_files
from replay.targets.websocket import WebSocketTarget
from replay.testkit import write_tape
from tests.conftest import REAL_TAPES

SPOT_CAPTURE = REAL_TAPES / "binance-ws" / "spot_btcusdt_20240808.gz"
FUTURES_CAPTURE = REAL_TAPES / "binance-ws" / "usdm_btcusdt_20240808.gz"
COINBASE_CAPTURE = REAL_TAPES / "coinbase-ws" / "COINBASE.ws.28.0"
TIMEOUT_S = 120.0
PACED_S = 10


def _binance_capture(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """The captured trade and bookTicker payloads, keyed by (stream, trade or update id)."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    with gzip.open(path, "rt") as f:
        for line in f:
            msg = json.loads(line.partition(" ")[2])
            stream = msg.get("stream", "")
            if stream.endswith(("@trade", "@bookTicker")):
                data = msg["data"]
                out[(stream, data["t"] if "t" in data else data["u"])] = data
    return out


def _coinbase_capture() -> list[dict[str, Any]]:
    return [
        json.loads(payload)
        for line in COINBASE_CAPTURE.read_text().splitlines()
        if (payload := line.partition(": ")[2]) and '"type":"' in payload
    ]


def _coinbase_quotes(path: Path) -> Path:
    """Quotes from the recording's real tickers. The 2021 feed had no ``best_bid_size`` /
    ``best_ask_size`` yet; the ticker's own ``last_size`` stands in for both (the only made-up part)."""
    rows = [
        {
            "exchange": "coinbase",
            "symbol": m["product_id"],
            "bid_px": float(m["best_bid"]),
            "bid_qty": float(m["last_size"]),
            "ask_px": float(m["best_ask"]),
            "ask_qty": float(m["last_size"]),
            "update_id": m["sequence"],
            "ts_event": iso_to_us(m["time"], "time"),
            "ts_recv": None,
        }
        for m in _coinbase_capture()
        if m["type"] == "ticker"
    ]
    write_tape(path, [], rows, source="coinbase-ws")
    return path


@pytest.fixture(scope="module")
def real_tapes_imported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The real captures as tapes: Binance spot, USD-M futures, Coinbase matches and ticker quotes."""
    root = tmp_path_factory.mktemp("real")
    tapes = {}
    for name, capture in (
        ("spot", SPOT_CAPTURE),
        ("futures", FUTURES_CAPTURE),
        ("coinbase", COINBASE_CAPTURE),
    ):
        import_files([capture], root / name, skip_bad=True)
        tapes[name] = root / name
    tapes["coinbase-quotes"] = _coinbase_quotes(root / "coinbase-quotes")
    return tapes


def _tape_events(tapes: list[Path]) -> list[Event]:
    events: list[Event] = []
    for tape in tapes:
        t = Tape.open(tape)
        for kind in ("trade", "quote"):
            events += [(kind, row) for row in t.read(kind).to_pylist()]
    return events


def _norm(kind: str, row: dict[str, Any]) -> str:
    keep = {k: v for k, v in row.items() if k not in ("ts_recv", "ts_sent", "seq")}
    if kind == "quote" and row["exchange"] == "binance":
        keep.pop("ts_event")  # a spot bookTicker has no time on Binance either
    return json.dumps([kind, keep], sort_keys=True)


class _Inbox:
    """Thread-safe collection of received items; waits on a condition, never on a clock."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._cond = threading.Condition()

    def add(self, items: list[Any]) -> None:
        with self._cond:
            self.items.extend(items)
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float = TIMEOUT_S) -> None:
        with self._cond:
            done = self._cond.wait_for(lambda: len(self.items) >= n, timeout)
            assert done, f"{len(self.items)} of {n}: {collections.Counter(repr(i)[:40] for i in self.items)}"


class _LoopThread:
    """An asyncio loop on its own thread, running the given coroutines until stopped."""

    def __init__(self, *coros: Callable[[asyncio.Event], Any]) -> None:
        self.coros = coros
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(asyncio.gather(*(c(self.stop) for c in self.coros)))
        except BaseException as e:  # reported by the test, not lost in the thread
            self.error = e

    def __enter__(self) -> _LoopThread:
        self.thread.start()
        return self

    def __exit__(self, *args: Any) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(timeout=30)


async def _python_binance(spot_url: str, futures_url: str, inbox: _Inbox, stop: asyncio.Event) -> None:
    """python-binance with its spot and USD-M base URLs pointed at the replay: a combined spot socket, a
    raw spot trade socket and a combined futures socket. Its queue is sized for a max-speed replay."""
    client = AsyncClient()
    manager = BinanceSocketManager(client, max_queue_size=1_000_000)
    manager.STREAM_URL = spot_url + "/"
    manager.FSTREAM_URL = futures_url + "/"
    sockets = {
        "spot": manager.multiplex_socket(["btcusdt@trade", "btcusdt@bookTicker"]),
        "spot-raw": manager.trade_socket("BTCUSDT"),
        "futures": manager.futures_multiplex_socket(["btcusdt@trade", "btcusdt@bookTicker"]),
    }

    async def pump(name: str, socket: Any) -> None:
        async with socket as s:
            while not stop.is_set():
                msg = await s.recv()
                if msg.get("e") != "error":
                    inbox.add([(name, msg)])

    tasks = [asyncio.ensure_future(pump(n, s)) for n, s in sockets.items()]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await client.close_connection()


def _copra(url: str, products: list[str], inbox: _Inbox) -> Callable[[asyncio.Event], Any]:
    async def run(stop: asyncio.Event) -> None:
        class Recorder(CopraClient):  # type: ignore[misc]
            def on_message(self, message: dict[str, Any]) -> None:
                if message["type"] in ("match", "last_match", "ticker"):
                    inbox.add([message])

        client = Recorder(
            asyncio.get_running_loop(),
            [Channel("matches", products), Channel("ticker", products)],
            feed_url=url,
            auto_reconnect=False,
        )
        await stop.wait()
        if client.connected.is_set():
            await client.close()

    return run


def _through_connectors(
    tapes: list[Path], faults: FaultSpec | None = None, batch_rows: int = 4096
) -> tuple[list[Event], list[Event], list[BaseConnector], Any]:
    """Replay ``tapes`` at max speed to one production connector per exchange and market on them:
    (the tape's events, what the connectors sank, the connectors, the replay summary)."""
    expected = _tape_events(tapes)
    exchanges = {r["exchange"] for _, r in expected}
    inbox = _Inbox()
    target = WebSocketTarget(wait_for_clients=len(exchanges), client_timeout_s=TIMEOUT_S)
    target.start()
    connectors: list[BaseConnector] = [
        BinanceConnector(["BTCUSDT"], inbox.add, exchange=ex, base_url=target.endpoint(ex))
        for ex in sorted(exchanges - {"coinbase"})
    ]
    if "coinbase" in exchanges:
        products = sorted({r["symbol"] for _, r in expected if r["exchange"] == "coinbase"})
        connectors.append(CoinbaseConnector(products, inbox.add, url=target.endpoint("coinbase")))
    with _LoopThread(*(c.run for c in connectors)) as loop:
        summary = Replay(tapes, target, faults=faults, batch_rows=batch_rows).run()
        inbox.wait_for(len(expected))
    assert loop.error is None, loop.error
    assert target.skipped == 0
    return expected, inbox.items, connectors, summary


def test_production_connectors_receive_every_event_of_the_real_captures(
    real_tapes_imported: dict[str, Path],
) -> None:
    expected, received, _, summary = _through_connectors(list(real_tapes_imported.values()))
    assert summary.sent == len(expected)
    assert {e[1]["exchange"] for e in expected} == {"binance", "binance-futures", "coinbase"}
    assert {e[0] for e in expected} == {"trade", "quote"}
    # every tape event, field by field, nothing more
    assert sorted(_norm(k, r) for k, r in received) == sorted(_norm(k, r) for k, r in expected)


def test_python_binance_receives_the_captured_messages(real_tapes_imported: dict[str, Path]) -> None:
    """python-binance reads far slower than the replay writes at max speed (its own keepalive then drops
    the lagging connection, as it would on Binance), so it gets the captures at the exchange's own pace:
    the first ``PACED_S`` seconds of both, at 1x."""
    tapes = [real_tapes_imported["spot"], real_tapes_imported["futures"]]
    everything = _tape_events(tapes)
    start = max(
        min(r["ts_event"] for _, r in everything if r["exchange"] == ex)
        for ex in ("binance", "binance-futures")
    )
    window = TimeWindow(start, start + PACED_S * 1_000_000)
    expected = [e for e in everything if window.start_us <= e[1]["ts_event"] < window.end_us]
    by_exchange = {
        ex: [e for e in expected if e[1]["exchange"] == ex] for ex in ("binance", "binance-futures")
    }
    spot_trades = sum(1 for k, _ in by_exchange["binance"] if k == "trade")
    captures = {
        "binance": _binance_capture(SPOT_CAPTURE),
        "binance-futures": _binance_capture(FUTURES_CAPTURE),
    }
    inbox = _Inbox()
    target = WebSocketTarget(wait_for_clients=3, client_timeout_s=TIMEOUT_S)
    target.start()
    with _LoopThread(
        lambda stop: _python_binance(
            target.endpoint("binance"), target.endpoint("binance-futures"), inbox, stop
        )
    ) as loop:
        Replay(tapes, target, speed=1.0, window=window).run()
        inbox.wait_for(len(expected) + spot_trades)
    assert loop.error is None, loop.error

    seen: dict[str, list[dict[str, Any]]] = {"spot": [], "spot-raw": [], "futures": []}
    for name, msg in inbox.items:
        if msg.get("e") != "serverShutdown":  # the end of the replay, tested with the protocol
            seen[name].append(msg)
    assert all("stream" not in m for m in seen["spot-raw"]) and all("stream" in m for m in seen["spot"])
    for name, exchange in (("spot", "binance"), ("spot-raw", "binance"), ("futures", "binance-futures")):
        got = []
        for msg in seen[name]:
            stream = msg.get("stream", "btcusdt@trade")
            data = msg.get("data", msg)
            original = captures[exchange][(stream, data["t"] if "t" in data else data["u"])]
            # the payload is the captured one, key order included, except E: the replay writes the
            # event's own exchange time where the capture has the time Binance sent it
            assert list(data) == list(original), (data, original)
            assert {k: v for k, v in data.items() if k != "E"} == {
                k: v for k, v in original.items() if k != "E"
            }
            assert data.get("E", data.get("T")) == data.get("T")
            got += parse_binance_message(data, 0, exchange=exchange)
        want = [e for e in by_exchange[exchange] if name != "spot-raw" or e[0] == "trade"]
        assert sorted(_norm(k, r) for k, r in got) == sorted(_norm(k, r) for k, r in want), name


def test_copra_receives_the_captured_coinbase_messages(real_tapes_imported: dict[str, Path]) -> None:
    tapes = [real_tapes_imported["coinbase"], real_tapes_imported["coinbase-quotes"]]
    expected = _tape_events(tapes)
    products = sorted({r["symbol"] for _, r in expected})
    captured = {
        (m["type"] == "ticker", m["product_id"], m["sequence"] if m["type"] == "ticker" else m["trade_id"]): m
        for m in _coinbase_capture()
        if m["type"] in ("match", "last_match", "ticker")
    }
    inbox = _Inbox()
    target = WebSocketTarget(wait_for_clients=1, client_timeout_s=TIMEOUT_S)
    target.start()
    with _LoopThread(_copra(target.endpoint("coinbase"), products, inbox)) as loop:
        Replay(tapes, target).run()
        inbox.wait_for(len(expected))
    assert loop.error is None, loop.error

    events = []
    for msg in inbox.items:
        if msg["type"] == "match":
            # as recorded (a recorded last_match is replayed as a match), but for the replay's own order
            # ids and sequence numbers
            original = captured[(False, msg["product_id"], msg["trade_id"])]
            own = {"type", "maker_order_id", "taker_order_id", "sequence"}
            assert {k: v for k, v in msg.items() if k not in own} == {
                k: v for k, v in original.items() if k not in own
            }
        else:
            original = captured[(True, msg["product_id"], msg["sequence"])]
            for key in ("product_id", "time", "sequence"):
                assert msg[key] == original[key], key
            # the 2021 feed padded book prices to the product's quote increment ("14.7550"), which a
            # tape does not record: the replay writes the shortest decimal of the same number
            for key in ("best_bid", "best_ask"):
                assert Decimal(msg[key]) == Decimal(original[key]), key
        events += parse_coinbase_message(msg, 0)
    assert sorted(_norm(k, r) for k, r in events) == sorted(_norm(k, r) for k, r in expected)


def test_connectors_survive_disconnects_without_loss_or_doubles(
    tmp_path: Path, tardis_tape: Callable[[Path, int], Path], real_tapes_imported: dict[str, Path]
) -> None:
    tapes = [tardis_tape(tmp_path / "futures", 300), real_tapes_imported["coinbase"]]
    faults = FaultSpec(disconnect=DisconnectFault(every=150, pause_ms=50))
    expected, received, connectors, summary = _through_connectors(tapes, faults, batch_rows=64)
    assert sorted(_norm(k, r) for k, r in received) == sorted(_norm(k, r) for k, r in expected)
    assert sum(c.reconnects for c in connectors) >= 3
    assert {lb.kind for lb in summary.labels} == {"disconnect"}


def test_ws_target_refuses_non_loopback() -> None:
    with pytest.raises(ReplayError, match="loopback"):
        WebSocketTarget(host="0.0.0.0")
