"""Config loading: the real files, unknown keys and wrong types named with their file, precedence."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.errors import ConfigError
from pipeline.config import TIERS, ConfigLoader, KinesisConfig, RuntimeSettings, default_config_dir
from pipeline.detectors.whale import WhaleSettings


def _copy_config(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(default_config_dir(), target)
    return target


def _edit_tier(config_dir: Path, tier: str, edit: dict[str, Any]) -> Path:
    path = config_dir / "tiers" / f"{tier}.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(edit)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("tier", TIERS)
def test_every_shipped_tier_loads(tier: str) -> None:
    config = ConfigLoader().load(tier, env={})
    assert config.tier == tier
    assert config.modules, "a tier switches at least one module on"
    assert all(config.enabled(m) for m in config.modules)
    assert config.kinesis.shards >= 1
    assert config.storage.warehouse_bucket != config.storage.checkpoint_bucket
    assert config.budgets.max_latency_p50_ms <= config.budgets.max_latency_p99_ms
    assert config.runtime == RuntimeSettings()


def test_tiers_grow_with_their_size() -> None:
    small, medium, large = (ConfigLoader().load(t, env={}) for t in TIERS)
    assert small.kinesis.shards <= medium.kinesis.shards <= large.kinesis.shards
    assert small.budgets.min_throughput_eps <= medium.budgets.min_throughput_eps


def test_unknown_key_names_the_key_and_the_file(tmp_path: Path) -> None:
    config_dir = _copy_config(tmp_path)
    tier_path = _edit_tier(config_dir, "small", {"kinesis": {"stream": "s", "shards": 2, "shard_count": 3}})
    with pytest.raises(ConfigError) as info:
        ConfigLoader(config_dir).load("small", env={})
    message = str(info.value)
    assert str(tier_path) in message
    assert "kinesis.shard_count" in message
    assert "unknown key" in message


def test_unknown_top_level_key_in_features_names_that_file(tmp_path: Path) -> None:
    config_dir = _copy_config(tmp_path)
    features = config_dir / "features.yaml"
    features.write_text(features.read_text() + "\nmodulez: {}\n")
    with pytest.raises(ConfigError, match=r"features\.yaml.*modulez: unknown key"):
        ConfigLoader(config_dir).load("small", env={})


def test_unknown_module_setting_names_the_module(tmp_path: Path) -> None:
    config_dir = _copy_config(tmp_path)
    tier_path = _edit_tier(config_dir, "small", {"settings": {"MOD-001": {"default_threshold": 5}}})
    with pytest.raises(ConfigError) as info:
        ConfigLoader(config_dir).load("small", env={})
    assert str(tier_path) in str(info.value)
    assert "MOD-001.default_threshold: unknown key" in str(info.value)


@pytest.mark.parametrize("module_id", ["MOD-002", "MOD-003"])
def test_min_history_above_baseline_windows_is_refused(tmp_path: Path, module_id: str) -> None:
    # the history is trimmed to baseline_windows, so such a detector could never alert
    config_dir = _copy_config(tmp_path)
    tier_path = _edit_tier(
        config_dir, "small", {"settings": {module_id: {"baseline_windows": 5, "min_history": 6}}}
    )
    with pytest.raises(ConfigError) as info:
        ConfigLoader(config_dir).load("small", env={})
    message = str(info.value)
    assert str(tier_path) in message
    assert module_id in message and "min_history (6) exceeds baseline_windows (5)" in message
    # equal is the largest accepted value
    _edit_tier(config_dir, "small", {"settings": {module_id: {"baseline_windows": 5, "min_history": 5}}})
    settings_ = ConfigLoader(config_dir).load("small", env={}).settings_for(module_id)
    assert (settings_.min_history, settings_.baseline_windows) == (5, 5)  # type: ignore[attr-defined]


def test_min_history_override_above_the_file_baseline_is_refused() -> None:
    # features.yaml ships MOD-003 with baseline_windows 30; an override alone can break the pair
    with pytest.raises(ConfigError, match=r"MOD-003: .*min_history \(31\) exceeds baseline_windows \(30\)"):
        ConfigLoader().load("small", env={}, overrides={"settings.MOD-003.min_history": 31})


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        ({"kinesis": {"stream": "s", "shards": "many"}}, "kinesis.shards"),
        ({"kinesis": {"stream": "s", "shards": 0}}, "kinesis.shards"),
        ({"storage": {"warehouse_bucket": "ab"}}, "storage.warehouse_bucket"),
        ({"budgets": {"min_throughput_eps": -1}}, "budgets.min_throughput_eps"),
        ({"modules": "MOD-001"}, "modules"),
    ],
)
def test_wrong_types_and_ranges_name_the_key(tmp_path: Path, edit: dict[str, Any], where: str) -> None:
    config_dir = _copy_config(tmp_path)
    tier_path = _edit_tier(config_dir, "small", edit)
    with pytest.raises(ConfigError) as info:
        ConfigLoader(config_dir).load("small", env={})
    assert str(tier_path) in str(info.value)
    assert where in str(info.value)


def test_invalid_yaml_and_missing_files_are_config_errors(tmp_path: Path) -> None:
    config_dir = _copy_config(tmp_path)
    (config_dir / "tiers" / "medium.yaml").write_text("tier: [medium\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        ConfigLoader(config_dir).load("medium", env={})
    (config_dir / "tiers" / "large.yaml").unlink()
    with pytest.raises(ConfigError, match="does not exist"):
        ConfigLoader(config_dir).load("large", env={})
    with pytest.raises(ConfigError, match="unknown tier 'huge'"):
        ConfigLoader(config_dir).load("huge", env={})


def test_tier_file_must_match_its_name_and_declare_its_modules(tmp_path: Path) -> None:
    config_dir = _copy_config(tmp_path)
    _edit_tier(config_dir, "small", {"tier": "medium"})
    with pytest.raises(ConfigError, match="says tier 'medium', expected 'small'"):
        ConfigLoader(config_dir).load("small", env={})
    _edit_tier(config_dir, "small", {"tier": "small", "modules": ["MOD-001", "MOD-999"]})
    with pytest.raises(ConfigError, match="MOD-999"):
        ConfigLoader(config_dir).load("small", env={})


def test_precedence_file_then_environment_then_override() -> None:
    loader = ConfigLoader()
    from_file = loader.load("small", env={})
    # MOD_001: a shell variable cannot hold "-"
    env = {"COATTAIL__KINESIS__SHARDS": "7", "COATTAIL__SETTINGS__MOD_001__DEFAULT_THRESHOLD_USD": "123"}
    from_env = loader.load("small", env=env)
    overridden = loader.load("small", env=env, overrides={"kinesis.shards": 9})
    assert from_file.kinesis.shards == 2
    assert from_env.kinesis.shards == 7
    assert from_env.settings_of(WhaleSettings).default_threshold_usd == 123.0
    assert overridden.kinesis.shards == 9
    # the environment still applies below an override
    assert overridden.settings_of(WhaleSettings).default_threshold_usd == 123.0


@settings(max_examples=40)
@given(
    file_shards=st.integers(1, 64),
    env_shards=st.none() | st.integers(1, 64),
    override_shards=st.none() | st.integers(1, 64),
)
def test_precedence_property(
    tmp_path_factory: pytest.TempPathFactory,
    file_shards: int,
    env_shards: int | None,
    override_shards: int | None,
) -> None:
    config_dir = _copy_config(tmp_path_factory.mktemp("cfg"))
    _edit_tier(config_dir, "medium", {"kinesis": {"stream": "s", "shards": file_shards}})
    env = {} if env_shards is None else {"COATTAIL__KINESIS__SHARDS": str(env_shards)}
    overrides = {} if override_shards is None else {"kinesis.shards": override_shards}
    config = ConfigLoader(config_dir).load("medium", env=env, overrides=overrides)
    expected = next(v for v in (override_shards, env_shards, file_shards) if v is not None)
    assert config.kinesis.shards == expected


def test_bad_environment_value_names_the_source() -> None:
    with pytest.raises(ConfigError, match=r"kinesis\.shards"):
        ConfigLoader().load("small", env={"COATTAIL__KINESIS__SHARDS": "lots"})
    with pytest.raises(
        ConfigError,
        match=r"^environment variable COATTAIL__KINESIS__STREAM__NAME: kinesis\.stream is a value",
    ):
        ConfigLoader().load("small", env={"COATTAIL__KINESIS__STREAM__NAME": "x"})


def test_runtime_settings_come_from_the_environment() -> None:
    env = {
        "COATTAIL_PROFILE": "mirror",
        "COATTAIL_AWS_ENDPOINT": "http://127.0.0.1:4566",
        "COATTAIL_KINESIS_ENDPOINT": "http://127.0.0.1:4568",
        "COATTAIL_GLUE_ENDPOINT": "http://127.0.0.1:5000",
        "COATTAIL_STATE_DIR": "/tmp/somewhere",
    }
    runtime = ConfigLoader().load("small", env=env).runtime
    assert runtime.profile == "mirror"
    assert runtime.aws_endpoint == "http://127.0.0.1:4566"
    assert runtime.service_endpoints == {"kinesis": "http://127.0.0.1:4568", "glue": "http://127.0.0.1:5000"}
    assert runtime.state_dir == Path("/tmp/somewhere")
    assert runtime.allow_real_aws is False, "real AWS is never switched on from the environment"


def test_bad_profile_in_environment_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="profile"):
        ConfigLoader().load("small", env={"COATTAIL_PROFILE": "prod"})


def test_config_objects_are_frozen() -> None:
    config = ConfigLoader().load("small", env={})
    with pytest.raises(ValidationError):
        config.kinesis.shards = 5  # type: ignore[misc]
    with pytest.raises(ValidationError):
        KinesisConfig(stream="s", shards=2, extra=1)  # type: ignore[call-arg]


def test_environment_keeps_the_case_of_symbol_keys() -> None:
    # a shell variable name is upper case; the symbol it names is matched against the known keys
    env = {"COATTAIL__SETTINGS__MOD_001__THRESHOLDS_USD__BTCUSDT": "250000"}
    whale = ConfigLoader().load("small", env=env).settings_of(WhaleSettings)
    assert whale.thresholds_usd["BTCUSDT"] == 250_000.0
    assert "btcusdt" not in whale.thresholds_usd
    # "-" cannot be in a variable name: BTC_USD names BTC-USD
    env = {"COATTAIL__SETTINGS__MOD_001__THRESHOLDS_USD__BTC_USD": "300000"}
    assert ConfigLoader().load("small", env=env).settings_of(WhaleSettings).threshold("BTC-USD") == 300_000.0


def test_environment_key_matching_nothing_is_refused() -> None:
    name = "COATTAIL__SETTINGS__MOD_001__THRESHOLDS_USD__DOGEUSDT"
    with pytest.raises(ConfigError, match=rf"{name}: 'DOGEUSDT' matches none of the keys"):
        ConfigLoader().load("small", env={name: "5"})


@pytest.mark.parametrize("text", ["2024", "no", "on", "1e3", "null"])
def test_a_string_field_takes_the_text_as_it_is(text: str) -> None:
    from_set = ConfigLoader().load("small", env={}, overrides={"kinesis.stream": text})
    assert from_set.kinesis.stream == text
    from_env = ConfigLoader().load("small", env={"COATTAIL__KINESIS__STREAM": text})
    assert from_env.kinesis.stream == text
    # other fields still read the text as YAML
    typed = ConfigLoader().load("small", env={}, overrides={"kinesis.shards": "4", "modules": "[MOD-001]"})
    assert (typed.kinesis.shards, typed.modules) == (4, ("MOD-001",))


def test_a_bad_override_is_blamed_not_the_tier_file() -> None:
    tier_path = str(default_config_dir() / "tiers" / "small.yaml")
    with pytest.raises(ConfigError) as info:
        ConfigLoader().load("small", env={}, overrides={"kinesis.shards": "lots"})
    assert str(info.value).startswith("--set kinesis.shards=lots: kinesis.shards:")
    assert tier_path not in str(info.value)
    with pytest.raises(ConfigError) as info:
        ConfigLoader().load("small", env={"COATTAIL__SETTINGS__MOD_001__DEFAULT_THRESHOLD_USD": "-1"})
    assert str(info.value).startswith(
        "environment variable COATTAIL__SETTINGS__MOD_001__DEFAULT_THRESHOLD_USD:"
    )
    assert "MOD-001.default_threshold_usd" in str(info.value)


def test_a_dotted_override_changes_one_entry_of_a_mapping() -> None:
    shipped = ConfigLoader().load("small", env={}).settings_of(WhaleSettings).thresholds_usd
    for env, overrides in (
        ({}, {"settings.MOD-001.thresholds_usd.BTCUSDT": "250000"}),
        ({"COATTAIL__SETTINGS__MOD_001__THRESHOLDS_USD__BTCUSDT": "250000"}, {}),
    ):
        whale = ConfigLoader().load("small", env=env, overrides=overrides).settings_of(WhaleSettings)
        assert whale.thresholds_usd == {**shipped, "BTCUSDT": 250_000.0}
    # a key naming the whole mapping still replaces it
    whole = {"settings.MOD-001.thresholds_usd": {"BTCUSDT": 1.0}}
    replaced = ConfigLoader().load("small", env={}, overrides=whole).settings_of(WhaleSettings)
    assert replaced.thresholds_usd == {"BTCUSDT": 1.0}


@pytest.mark.parametrize(("markets", "message"), [
    ({"USDT": "XRP"}, r"tokens.yaml: stablecoin_markets.USDT: 'XRP' has no reference instrument"),
    ({"USDT": "DOGE", "USDC": "BTC"}, r"stablecoin_markets.USDT: 'DOGE' has no reference instrument"),
    ({"WBTC": "BTC"}, r"stablecoin_markets names \['WBTC'\], which are not in stablecoins"),
])
def test_a_stablecoin_market_must_have_a_reference_instrument(
    tmp_path: Path, markets: dict[str, str], message: str
) -> None:
    """A stablecoin's flows count for a market whose reference instrument keys them: a market without
    one (or a coin that is no stablecoin) fails at load, naming the file and what to change."""
    config_dir = _copy_config(tmp_path)
    tokens = config_dir / "tokens.yaml"
    data = yaml.safe_load(tokens.read_text())
    tokens.write_text(yaml.safe_dump({**data, "stablecoin_markets": markets}))
    with pytest.raises(ConfigError, match=message):
        ConfigLoader(config_dir).load("large", env={})


def test_the_shipped_stablecoins_count_for_btc() -> None:
    tokens = ConfigLoader().load("large", env={}).tokens
    markets = {coin: tokens.market_of(coin) for coin in tokens.stablecoins}
    assert markets == dict.fromkeys(tokens.stablecoins, "BTC")
    assert tokens.market_of("ETH") == "ETH"
