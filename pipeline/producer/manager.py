"""The producer process: several exchange connectors in one asyncio loop, their events onto Kinesis.

Each connector (``pipeline.connectors``) normalizes its exchange's messages into events; the producer
groups them (at most ``batch.linger_ms`` or ``batch.max_events``), stamps ``ts_sent`` (the hand-over to
Kinesis), encodes the wire records (``core.events.to_wire``) and hands them to the Kinesis writer
(``pipeline.producer.kinesis_writer``: batching, KPL aggregation, ordered retries), the same writer the
replay uses. Hand-overs run on one worker thread in order, so per-key order holds from the socket to
the stream.

Stopping (``stop`` set, e.g. by SIGTERM) ends the connectors, hands over what they accepted and waits
until the writer has put it: nothing accepted is lost. A malformed message is counted and skipped; a
trade-id gap is counted, reported (``on_gap``) and reaches MOD-004 through the stream itself, as
``TRADE_ID_GAP``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

import numpy as np
import pyarrow as pa

from core.errors import ConfigError
from core.events import partition_key, to_wire
from pipeline.config import RuntimeSettings
from pipeline.connectors.base import BaseConnector, Event, Gap
from pipeline.connectors.binance import EXCHANGES as BINANCE_EXCHANGES
from pipeline.connectors.binance_ws import BinanceConnector
from pipeline.connectors.coinbase import EXCHANGE as COINBASE
from pipeline.connectors.coinbase_ws import CoinbaseConnector
from pipeline.producer.kinesis_writer import KinesisWriter
from pipeline.producer.settings import ProducerSettings

EXCHANGES: Final = (*BINANCE_EXCHANGES, COINBASE)
LATENCY_WINDOW: Final = 100_000
GAP_LOG: Final = 10_000

OnPut = Callable[[list[Event], int], None]
"""Called (on the writer's thread) with events that are on the stream and the wall time (µs) they were."""


@dataclass(frozen=True)
class ProducerStats:
    """What the producer did so far (the status line)."""

    messages_in: int
    events_accepted: int
    events_out: int
    bad_messages: int
    reconnects: int
    gaps: int
    missing_trades: int
    put_p50_ms: float | None
    put_p99_ms: float | None
    """Receive -> on the stream, over the last ``LATENCY_WINDOW`` events put."""

    def line(self) -> str:
        """One status line."""

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:,.1f}"

        return (
            f"in {self.messages_in:,} msgs | out {self.events_out:,} events | bad {self.bad_messages:,} | "
            f"reconnects {self.reconnects:,} | gaps {self.gaps:,} ({self.missing_trades:,} trades) | "
            f"put p50 {ms(self.put_p50_ms)} ms p99 {ms(self.put_p99_ms)} ms"
        )


def make_connector(
    exchange: str,
    symbols: Sequence[str],
    settings: ProducerSettings,
    sink: Callable[[list[Event]], None],
    *,
    rng: random.Random,
    on_gap: Callable[[Gap], None],
) -> BaseConnector:
    """The connector of ``exchange`` for ``symbols``, configured from ``settings``."""
    if exchange not in settings.exchanges or exchange not in EXCHANGES:
        known = sorted(set(settings.exchanges) & set(EXCHANGES))
        raise ConfigError(f"no connector for exchange {exchange!r}; choose from {', '.join(known)}")
    endpoint = settings.exchanges[exchange]
    options = {
        "max_reconnects": settings.reconnect.max_attempts,
        "reconnect_base_s": settings.reconnect.base_ms / 1e3,
        "reconnect_max_s": settings.reconnect.max_ms / 1e3,
        "ping_interval_s": settings.keepalive.ping_interval_s,
        "ping_timeout_s": settings.keepalive.ping_timeout_s,
        "rng": rng,
        "on_gap": on_gap,
    }
    if exchange == COINBASE:
        return CoinbaseConnector(symbols, sink, url=endpoint.url, channels=endpoint.channels, **options)
    return BinanceConnector(
        symbols, sink, exchange=exchange, base_url=endpoint.url, channels=endpoint.channels, **options
    )


class Producer:
    """Connectors for ``subscriptions`` (exchange -> symbols) feeding one Kinesis writer."""

    def __init__(
        self,
        settings: ProducerSettings,
        runtime: RuntimeSettings,
        stream: str,
        subscriptions: Mapping[str, Sequence[str]],
        *,
        seed: int | None = None,
        writer: KinesisWriter | None = None,
        on_gap: Callable[[Gap], None] | None = None,
        on_put: OnPut | None = None,
    ) -> None:
        if not subscriptions or not all(subscriptions.values()):
            raise ConfigError("name at least one exchange, each with at least one symbol")
        self.settings = settings
        self.writer = writer or KinesisWriter(
            runtime,
            stream,
            aggregate=settings.kinesis.aggregate,
            max_attempts=settings.kinesis.max_attempts,
            seed=seed or 0,
        )
        self.gap_log: deque[Gap] = deque(maxlen=GAP_LOG)
        """The most recent gaps (all of them, up to ``GAP_LOG``)."""
        self._on_gap = on_gap
        self._on_put = on_put
        rng = random.Random(seed)
        self.connectors = [
            make_connector(ex, symbols, settings, self._accept, rng=rng, on_gap=self._gap)
            for ex, symbols in subscriptions.items()
        ]
        self._pending: list[Event] = []
        self._full = asyncio.Event()
        self._accepted = 0
        self._out = 0
        # the recent events' latencies only: a producer runs for days
        self._latency_us: deque[int] = deque(maxlen=LATENCY_WINDOW)
        self._latency_lock = threading.Lock()  # appended on the writer's thread, read on the loop
        # one hand-over at a time, in order: per-key order from the sockets to the stream
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="producer-handover")

    def _accept(self, events: list[Event]) -> None:
        self._pending.extend(events)
        self._accepted += len(events)
        if len(self._pending) >= self.settings.batch.max_events:
            self._full.set()

    def _gap(self, gap: Gap) -> None:
        self.gap_log.append(gap)
        if self._on_gap is not None:
            self._on_gap(gap)

    def stats(self) -> ProducerStats:
        """A snapshot of the counters (safe to call from the loop at any time)."""
        latency = self.latencies_us()
        p50, p99 = (
            (float(np.percentile(latency, 50)) / 1e3, float(np.percentile(latency, 99)) / 1e3)
            if latency.size
            else (None, None)
        )
        return ProducerStats(
            messages_in=sum(c.messages for c in self.connectors),
            events_accepted=self._accepted,
            events_out=self._out,
            bad_messages=sum(c.bad_messages for c in self.connectors),
            reconnects=sum(c.reconnects for c in self.connectors),
            gaps=sum(c.gaps for c in self.connectors),
            missing_trades=sum(c.missing_trades for c in self.connectors),
            put_p50_ms=p50,
            put_p99_ms=p99,
        )

    def latencies_us(self) -> np.ndarray:
        """Receive -> on the stream, in µs, of the last ``LATENCY_WINDOW`` events put."""
        with self._latency_lock:
            return np.array(self._latency_us, dtype=np.int64)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set (or a connector or the writer fails); then put what was accepted."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.writer.open)
        tasks = [asyncio.ensure_future(c.run(stop)) for c in self.connectors]
        tasks.append(asyncio.ensure_future(self._flush_loop(stop)))
        error: BaseException | None = None
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            error = next((t.exception() for t in done if t.exception() is not None), None)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                await self._flush()
                await loop.run_in_executor(self._executor, self.writer.close)
            except BaseException as e:
                error = error or e
            self._executor.shutdown(wait=True)
        if error is not None:
            raise error

    async def _flush_loop(self, stop: asyncio.Event) -> None:
        linger_s = self.settings.batch.linger_ms / 1e3
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake(stop), linger_s)
            await self._flush()

    async def _wake(self, stop: asyncio.Event) -> None:
        full = asyncio.ensure_future(self._full.wait())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({full, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            full.cancel()
            stopped.cancel()

    async def _flush(self) -> None:
        """Hand the accepted events to the writer (in order; waits while the writer is behind)."""
        if not self._pending:
            return
        events, self._pending = self._pending, []
        self._full.clear()
        ts_sent = _now_us()
        keys = pa.array([partition_key(e["exchange"], e["symbol"]) for _, e in events], type=pa.string())
        data = pa.array([to_wire(kind, e, ts_sent) for kind, e in events], type=pa.binary())
        received = [e["ts_recv"] for _, e in events]

        def on_put(done_us: int) -> None:
            with self._latency_lock:
                self._latency_us.extend(done_us - r for r in received)
                self._out += len(events)
            if self._on_put is not None:
                self._on_put(events, done_us)

        await asyncio.get_running_loop().run_in_executor(
            self._executor, self.writer.submit, keys, data, on_put
        )


def _now_us() -> int:
    return time.time_ns() // 1_000
