"""Coinbase Exchange connector: ``subscribe`` to the ``matches`` channel, receive ``match`` messages."""

from __future__ import annotations

from typing import Any, Final

from pipeline.connectors.base import BaseConnector, Event
from pipeline.connectors.coinbase import EXCHANGE, parse_coinbase_message

ENDPOINT: Final = "wss://ws-feed.exchange.coinbase.com"


class CoinbaseConnector(BaseConnector):
    """One connection for all products; the subscription names them."""

    exchange = EXCHANGE

    def default_url(self) -> str:
        return ENDPOINT

    def subscribe_messages(self) -> list[dict[str, Any]]:
        return [{"type": "subscribe", "product_ids": self.symbols, "channels": ["matches"]}]

    def parse(self, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        return parse_coinbase_message(msg, ts_recv)
