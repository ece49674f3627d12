"""The instrument registry: lookups, refusals, and USD notional taken from it (never from a suffix)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import yaml

from core.errors import ConfigError
from pipeline.config import ConfigLoader, default_config_dir
from pipeline.instruments import InstrumentsConfig
from pipeline.testkit import alerts_of, run_engine, trade

T0 = 1_767_225_600_000_000


def test_shipped_registry_lookups() -> None:
    reg = ConfigLoader().load("small", env={}).instruments
    assert reg.quote_of("binance", "BTCUSDT") == "USDT" and reg.usd_rate("coinbase", "ETH-USD") == 1.0
    assert reg.asset_of("binance-futures", "BTCUSDT") == "BTC"
    assert reg.get("binance-futures", "BTCUSDT").market == "perpetual"  # type: ignore[union-attr]
    assert math.isnan(reg.usd_rate("coinbase", "BAND-BTC"))  # listed, but BTC has no USD rate
    assert reg.quote_of("kraken", "XBTUSDT") == ""  # not listed: no suffix guess
    hl = reg.hyperliquid("ETH")
    assert hl is not None and (hl.hl_asset, hl.hl_sz_decimals) == (1, 4)
    assert {i.exchange for i in reg.of_asset("SOL")} >= {"binance", "coinbase", "hyperliquid"}
    assert reg.unknown_instruments([("binance", "BTCUSDT"), ("kraken", "XBTUSDT")]) == [("kraken", "XBTUSDT")]
    keys = [("coinbase", "BTC-USD"), ("kraken", "XBTUSDT"), ("binance", "BTCUSDT")]
    assert reg.listed_names(keys) == ["coinbase:BTC-USD", "binance:BTCUSDT"]  # unlisted dropped, order kept


def test_duplicates_and_bad_references_are_refused(tmp_path: Path) -> None:
    data = yaml.safe_load((default_config_dir() / "instruments.yaml").read_text())
    dup = {**data, "instruments": [*data["instruments"], data["instruments"][0]]}
    with pytest.raises(ValueError, match="binance:BTCUSDT is listed twice"):
        InstrumentsConfig.model_validate(dup)
    with pytest.raises(ValueError, match="reference instrument of BTC, coinbase:ETH-USD"):
        InstrumentsConfig.model_validate({**data, "reference": {"BTC": ["coinbase", "ETH-USD"]}})
    target = tmp_path / "config"
    shutil.copytree(default_config_dir(), target)
    bad = {**data, "instruments": [{**data["instruments"][0], "colour": "red"}]}
    (target / "instruments.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match=r"instruments.yaml: instruments.0.colour: unknown key"):
        ConfigLoader(target).load("small", env={})


def test_notional_uses_the_registry_quote_not_the_symbol_spelling() -> None:
    config = ConfigLoader().load("small", env={}, overrides={"modules": ["MOD-001"]})
    # 2M USDT on binance fires; the same trade on an unlisted exchange has no USD notional
    rows = [trade(1, 100.0, 20_000.0, T0), trade(2, 100.0, 20_000.0, T0 + 1, exchange="kraken")]
    alerts = alerts_of(run_engine(config, rows))
    assert list(zip(alerts["exchange"], alerts["symbol"], strict=True)) == [("binance", "BTCUSDT")]
