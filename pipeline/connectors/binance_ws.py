"""Binance combined-stream connector: ``trade`` (or ``aggTrade``) and ``bookTicker`` for a set of symbols.

A spot ``bookTicker`` carries no time. Its receive time would put the receiver's clock (its offset from
the exchange's, or in a replay the wall clock instead of the replayed one) into ``ts_event`` and move
the pipeline's watermark. So the connector keeps the exchange clock of the connection: the offset
between receive time and exchange time of the latest timed message (a trade), and dates a book ticker
at its receive time minus that offset. Book tickers that arrive before the first trade are held until
it comes (at most ``HOLD_MAX`` of them or ``HOLD_US`` of receive time, then dated by receive time).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from core.errors import ConfigError
from pipeline.connectors.base import BaseConnector, Event
from pipeline.connectors.binance import FUTURES, SPOT, parse_binance_message

ENDPOINTS: Final = {
    SPOT: "wss://stream.binance.com:9443",
    FUTURES: "wss://fstream.binance.com",
}
CHANNELS: Final = ("trade", "aggTrade", "bookTicker")
DEFAULT_CHANNELS: Final = ("trade", "bookTicker")
HOLD_MAX: Final = 1_000
HOLD_US: Final = 1_000_000


class BinanceConnector(BaseConnector):
    """Subscribes through the URL (``/stream?streams=btcusdt@trade/btcusdt@bookTicker``), so every
    reconnect resubscribes. ``channels``: Binance stream types per symbol; take ``trade`` or ``aggTrade``,
    not both (their ids are different counters and both become trades)."""

    def __init__(
        self,
        *args: Any,
        exchange: str = SPOT,
        base_url: str | None = None,
        channels: Sequence[str] = DEFAULT_CHANNELS,
        **kwargs: Any,
    ) -> None:
        if not set(channels) <= set(CHANNELS) or {"trade", "aggTrade"} <= set(channels):
            raise ConfigError(
                f"Binance channels {list(channels)}: choose from {', '.join(CHANNELS)}, "
                "with trade or aggTrade but not both"
            )
        self.exchange = exchange
        self.channels = tuple(channels)
        self._base = base_url or ENDPOINTS[exchange]
        super().__init__(*args, **kwargs)
        # a spot connection with trades has an exchange clock to date its book tickers by
        self._dated = exchange == SPOT and "bookTicker" in channels and len(self.channels) > 1
        self._offset_us: int | None = None
        self._held: list[tuple[Event, int]] = []

    def default_url(self) -> str:
        streams = "/".join(f"{s.lower()}@{c}" for s in self.symbols for c in self.channels)
        return f"{self._base}/stream?streams={streams}"

    def parse(self, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        events = parse_binance_message(msg, ts_recv, exchange=self.exchange)
        if not self._dated or not events:
            return events
        out: list[Event] = []
        for kind, event in events:
            if kind == "trade":
                self._offset_us = ts_recv - event["ts_event"]
                out += self.release()
                out.append((kind, event))
            elif self._offset_us is not None:
                out.append((kind, {**event, "ts_event": ts_recv - self._offset_us}))
            else:
                self._held.append(((kind, event), ts_recv))
        if self._held and (len(self._held) >= HOLD_MAX or ts_recv - self._held[0][1] >= HOLD_US):
            out += self.release()
        return out

    def release(self) -> list[Event]:
        """Held book tickers, dated by the exchange clock when there is one, else by receive time."""
        held, self._held = self._held, []
        if self._offset_us is None:
            return [event for event, _ in held]
        return [(kind, {**event, "ts_event": recv - self._offset_us}) for (kind, event), recv in held]
