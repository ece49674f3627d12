"""The producer's settings: ``config/producer.yaml``, then ``--ws-url`` overrides of exchange URLs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

from pydantic import Field

from core.errors import ConfigError
from core.frozen import Frozen
from pipeline.config import default_config_dir, parse_model, read_yaml

FILE: Final = "producer.yaml"


class ExchangeEndpoint(Frozen):
    """Where one exchange (or market) is reached, and which of its streams the producer takes."""

    url: str = Field(min_length=1)
    channels: tuple[str, ...]


class ReconnectSettings(Frozen):
    """Backoff between reconnects (``pipeline.backoff``)."""

    base_ms: float = Field(200.0, gt=0)
    max_ms: float = Field(30_000.0, gt=0)
    max_attempts: int | None = Field(None, ge=1)


class KeepaliveSettings(Frozen):
    """Client pings; ``None`` turns them off."""

    ping_interval_s: float | None = Field(20.0, gt=0)
    ping_timeout_s: float | None = Field(20.0, gt=0)


class BatchSettings(Frozen):
    """How events are grouped before the Kinesis writer gets them."""

    linger_ms: float = Field(50.0, ge=0)
    max_events: int = Field(5_000, ge=1)


class ProducerKinesisSettings(Frozen):
    """The Kinesis writer's options."""

    aggregate: bool = True
    max_attempts: int = Field(10, ge=1)


class ProducerSettings(Frozen):
    """The shape of ``config/producer.yaml``."""

    exchanges: dict[str, ExchangeEndpoint]
    reconnect: ReconnectSettings = ReconnectSettings()
    keepalive: KeepaliveSettings = KeepaliveSettings()
    batch: BatchSettings = BatchSettings()
    kinesis: ProducerKinesisSettings = ProducerKinesisSettings()

    def with_urls(self, urls: Mapping[str, str]) -> ProducerSettings:
        """These settings with some exchanges' URLs replaced (``--ws-url EXCHANGE=URL``)."""
        unknown = sorted(set(urls) - set(self.exchanges))
        if unknown:
            raise ConfigError(
                f"--ws-url for unknown exchanges {unknown}; {FILE} names {', '.join(self.exchanges)}"
            )
        exchanges = {
            name: ep.model_copy(update={"url": urls[name]}) if name in urls else ep
            for name, ep in self.exchanges.items()
        }
        return self.model_copy(update={"exchanges": exchanges})


def load_producer_settings(path: Path | None = None) -> ProducerSettings:
    """``config/producer.yaml`` (or ``path``) as ``ProducerSettings``; a ``ConfigError`` names bad keys."""
    path = path or default_config_dir() / FILE
    return parse_model(ProducerSettings, read_yaml(path), path)


def parse_ws_urls(items: list[str]) -> dict[str, str]:
    """``EXCHANGE=URL`` options as a mapping; a ``ConfigError`` for one without ``=``."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, url = item.partition("=")
        if not sep or not name or not url:
            raise ConfigError(
                f"--ws-url {item!r}: expected EXCHANGE=URL, e.g. binance=ws://127.0.0.1:9001/binance"
            )
        out[name.strip()] = url.strip()
    return out
