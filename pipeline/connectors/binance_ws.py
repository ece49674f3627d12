"""Binance combined-stream connector: ``trade`` (or ``aggTrade``) and ``bookTicker`` for a set of symbols."""

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

    def default_url(self) -> str:
        streams = "/".join(f"{s.lower()}@{c}" for s in self.symbols for c in self.channels)
        return f"{self._base}/stream?streams={streams}"

    def parse(self, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        return parse_binance_message(msg, ts_recv, exchange=self.exchange)
