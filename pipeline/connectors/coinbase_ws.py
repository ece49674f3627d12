"""Coinbase Exchange connector: ``subscribe`` to ``matches`` and ``ticker``; trades and quotes out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from core.errors import ConfigError
from pipeline.connectors.base import BaseConnector, Event
from pipeline.connectors.coinbase import EXCHANGE, parse_coinbase_message

ENDPOINT: Final = "wss://ws-feed.exchange.coinbase.com"
CHANNELS: Final = ("matches", "ticker")


class CoinbaseConnector(BaseConnector):
    """One connection for all products; the subscription names them.

    After every (re)subscription the feed repeats the product's most recent trade as ``last_match``;
    the connector passes it on only when it is newer than the last trade it saw, so a reconnect neither
    loses nor doubles a trade.
    """

    exchange = EXCHANGE

    def __init__(self, *args: Any, channels: Sequence[str] = CHANNELS, **kwargs: Any) -> None:
        if not channels or not set(channels) <= set(CHANNELS):
            raise ConfigError(f"Coinbase channels {list(channels)}: choose from {', '.join(CHANNELS)}")
        self.channels = list(channels)
        super().__init__(*args, **kwargs)
        self._last_trade: dict[str, int] = {}

    def default_url(self) -> str:
        return ENDPOINT

    def subscribe_messages(self) -> list[dict[str, Any]]:
        return [{"type": "subscribe", "product_ids": self.symbols, "channels": self.channels}]

    def parse(self, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        events = parse_coinbase_message(msg, ts_recv)
        fresh: list[Event] = []
        for kind, event in events:
            if kind == "trade":
                seen = self._last_trade.get(event["symbol"])
                if msg.get("type") == "last_match" and seen is not None and event["trade_id"] <= seen:
                    continue
                self._last_trade[event["symbol"]] = max(event["trade_id"], seen or event["trade_id"])
            fresh.append((kind, event))
        return fresh
