"""Binance combined-stream connector: ``trade`` and ``bookTicker`` for a set of symbols."""

from __future__ import annotations

from typing import Any, Final

from pipeline.connectors.base import BaseConnector, Event
from pipeline.connectors.binance import FUTURES, SPOT, parse_binance_message

ENDPOINTS: Final = {
    SPOT: "wss://stream.binance.com:9443",
    FUTURES: "wss://fstream.binance.com",
}


class BinanceConnector(BaseConnector):
    """Subscribes through the URL (``/stream?streams=btcusdt@trade/btcusdt@bookTicker``)."""

    def __init__(self, *args: Any, exchange: str = SPOT, base_url: str | None = None, **kwargs: Any) -> None:
        self.exchange = exchange
        self._base = base_url or ENDPOINTS[exchange]
        super().__init__(*args, **kwargs)

    def default_url(self) -> str:
        streams = "/".join(f"{s.lower()}@{c}" for s in self.symbols for c in ("trade", "bookTicker"))
        return f"{self._base}/stream?streams={streams}"

    def parse(self, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        return parse_binance_message(msg, ts_recv, exchange=self.exchange)
