"""config/producer.yaml and the --ws-url overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from pipeline.producer.settings import load_producer_settings, parse_ws_urls


def test_the_shipped_file_names_the_production_endpoints() -> None:
    settings = load_producer_settings()
    assert settings.exchanges["binance"].url == "wss://stream.binance.com:9443"
    assert settings.exchanges["coinbase"].url == "wss://ws-feed.exchange.coinbase.com"
    assert settings.reconnect.max_attempts is None  # production never gives up


def test_a_ws_url_replaces_one_endpoint_only() -> None:
    settings = load_producer_settings()
    urls = parse_ws_urls(["binance=ws://127.0.0.1:9/binance"])
    moved = settings.with_urls(urls)
    assert moved.exchanges["binance"].url == "ws://127.0.0.1:9/binance"
    assert moved.exchanges["binance"].channels == settings.exchanges["binance"].channels
    assert moved.exchanges["coinbase"] == settings.exchanges["coinbase"]


def test_bad_overrides_and_files_say_what_to_change(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="EXCHANGE=URL"):
        parse_ws_urls(["ws://127.0.0.1:9"])
    with pytest.raises(ConfigError, match="unknown exchanges \\['kraken'\\]"):
        load_producer_settings().with_urls({"kraken": "ws://x"})
    bad = tmp_path / "producer.yaml"
    bad.write_text("exchanges: {}\nbatch: {linger_ms: -1}\n")
    with pytest.raises(ConfigError, match="linger_ms"):
        load_producer_settings(bad)
