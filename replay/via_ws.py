"""The production path for a replay: tape -> the replay's WebSocket server -> the producer -> Kinesis.

The replay serves its tapes as the exchanges would (``replay.targets.websocket``); the production
producer (``pipeline.producer.manager``) connects to that server, with only its exchange URLs changed,
and puts the events on Kinesis. Both run in this process (the server on its own loop thread, the
producer on another) so that the time each event was sent by the "exchange" can be matched to the time
the producer had it on the stream: the producer's latency stage (exchange send -> Kinesis put).

The end of the tape closes every connection after the last frame (an exchange's maintenance close):
once every connector has seen that close, everything it received was accepted, and stopping the
producer puts it on the stream.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa

from core.errors import ConfigError, ReplayError
from core.events import partition_key
from core.tape import Tape
from pipeline.config import RuntimeSettings
from pipeline.connectors.base import Event
from pipeline.producer.manager import EXCHANGES, Producer, ProducerStats
from pipeline.producer.settings import ProducerSettings
from replay import wire
from replay.engine import DEFAULT_WATERMARK_US, Progress, Replay, ReplaySummary
from replay.faults import FaultSpec
from replay.merge import DEFAULT_BATCH_ROWS
from replay.targets.websocket import WebSocketTarget

DRAIN_TIMEOUT_S: Final = 60.0


@dataclass(frozen=True)
class ProducerReport:
    """What the producer did during a replay, and its latency stage."""

    stats: ProducerStats
    send_to_put_us: np.ndarray
    """Per event put: the replay's send (its hand-over to the WebSocket server) -> on the stream, µs."""
    gaps: list[tuple[str, str, int, int, bool]]
    """(exchange, symbol, last id, next id, after a reconnect) per trade-id gap the connectors saw."""


class _StampedTarget(WebSocketTarget):
    """The WebSocket server, remembering per key when each event in flight was sent (until it is put).

    Per key, the producer puts events in the order the server sent them, so the n-th put of a key is its
    n-th send. A corrupt frame never becomes an event, so it is not remembered; the rest (duplicates
    too) all reach the producer.
    """

    def __init__(self, *, wait_for_clients: int, client_timeout_s: float) -> None:
        super().__init__(wait_for_clients=wait_for_clients, client_timeout_s=client_timeout_s)
        self.sent_at: dict[str, deque[int]] = {}
        self.lock = threading.Lock()

    def _send(self, table: pa.Table, ts_sent: int) -> None:
        corrupt = set(wire.corrupt_rows(table).tolist())
        keys = wire.event_keys(table).to_pylist()
        with self.lock:  # stamped before any frame leaves, so a put can never precede its stamp
            for i, key in enumerate(keys):
                if i not in corrupt:
                    self.sent_at.setdefault(key, deque()).append(ts_sent)
        super()._send(table, ts_sent)


def subscriptions_of(tapes: Sequence[Path]) -> dict[str, list[str]]:
    """Exchange -> symbols the tapes hold, for the producer; a ``ConfigError`` for an exchange it lacks."""
    out: dict[str, set[str]] = {}
    for path in tapes:
        for exchange, symbol in Tape.open(path).instruments():
            out.setdefault(exchange, set()).add(symbol)
    unserved = sorted(set(out) - set(EXCHANGES))
    if unserved:
        raise ConfigError(
            f"the tapes hold events of {', '.join(unserved)}, which no exchange connector serves; "
            f"--via ws replays {', '.join(EXCHANGES)} only (use --via kinesis)"
        )
    return {exchange: sorted(symbols) for exchange, symbols in sorted(out.items())}


def replay_through_producer(
    tapes: Sequence[Path],
    settings: ProducerSettings,
    runtime: RuntimeSettings,
    stream: str,
    *,
    speed: float | None = None,
    faults: FaultSpec | None = None,
    seed: int | None = None,
    watermark_us: int = DEFAULT_WATERMARK_US,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    client_timeout_s: float = 60.0,
    on_progress: Callable[[Progress], None] | None = None,
) -> tuple[ReplaySummary, ProducerReport]:
    """Replay ``tapes`` to the producer over WebSocket; return once the producer put all it accepted."""
    subscriptions = subscriptions_of(tapes)
    target = _StampedTarget(wait_for_clients=len(subscriptions), client_timeout_s=client_timeout_s)
    target.start()
    latencies: list[int] = []

    def on_put(events: list[Event], done_us: int) -> None:
        with target.lock:
            for _, e in events:
                sent = target.sent_at.get(partition_key(e["exchange"], e["symbol"]))
                if sent:
                    latencies.append(done_us - sent.popleft())

    producer = Producer(
        settings.with_urls({ex: target.endpoint(ex) for ex in subscriptions}),
        runtime,
        stream,
        subscriptions,
        seed=seed,
        on_put=on_put,
    )
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            loop.run_until_complete(producer.run(stop))
        except BaseException as e:
            failure.append(e)

    thread = threading.Thread(target=serve, name="producer", daemon=True)
    thread.start()
    try:
        summary = Replay(
            list(tapes), target, speed=speed, faults=faults, seed=seed, watermark_us=watermark_us,
            batch_rows=batch_rows, on_progress=on_progress,
        ).run()  # fmt: skip
        _await_closes(producer, thread, failure)
    except ReplayError as e:
        if failure:  # the replay waited for clients that had failed: the producer's error says why
            raise failure[0] from e
        raise
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join()
        loop.close()
    if failure:
        raise failure[0]
    gaps = [(g.exchange, g.symbol, g.last_id, g.next_id, g.after_reconnect) for g in producer.gap_log]
    return summary, ProducerReport(producer.stats(), np.array(latencies, dtype=np.int64), gaps)


def _await_closes(producer: Producer, thread: threading.Thread, failure: list[BaseException]) -> None:
    """Until every connector has seen the server's closing (so it read every frame before it)."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while any(c.connected.is_set() for c in producer.connectors):
        if failure or not thread.is_alive():
            return
        if time.monotonic() > deadline:
            raise ReplayError(
                f"the producer's connectors did not see the end of the replay within {DRAIN_TIMEOUT_S:.0f} s"
            )
        time.sleep(0.01)
