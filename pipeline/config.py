"""Typed, frozen configuration and the one place it is loaded (``ConfigLoader``).

Precedence, lowest first: ``config/features.yaml`` < ``config/tiers/<tier>.yaml`` < environment variables
(``COATTAIL__SECTION__KEY=value``) < explicit overrides (``section.key=value`` from the command line).
Every model rejects unknown keys; errors name the key and the file it came from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import ConfigError

TierName = Literal["small", "medium", "large"]
ProfileName = Literal["lite", "mirror", "aws"]
TIERS: tuple[TierName, ...] = ("small", "medium", "large")
ENV_PREFIX = "COATTAIL__"
M = TypeVar("M", bound=BaseModel)


class Frozen(BaseModel):
    """Base of every config model: immutable, and unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- module settings -------------------------------------------------------------------------------


class WhaleSettings(Frozen):
    """MOD-001: one trade whose USD notional reaches the symbol's threshold."""

    default_threshold_usd: float = Field(1_000_000.0, gt=0)
    thresholds_usd: dict[str, float] = Field(default_factory=dict)
    severity_multiples: dict[str, float] = Field(
        default_factory=lambda: {"low": 1.0, "medium": 2.0, "high": 5.0, "critical": 10.0}
    )
    quote_usd: dict[str, float] = Field(
        default_factory=lambda: {"USD": 1.0, "USDT": 1.0, "USDC": 1.0, "FDUSD": 1.0}
    )

    @field_validator("severity_multiples")
    @classmethod
    def _severity_starts_at_one(cls, v: dict[str, float]) -> dict[str, float]:
        if not v or min(v.values()) != 1.0:
            raise ValueError("the lowest severity multiple must be 1.0 (the threshold itself)")
        return v


class VolumeAnomalySettings(Frozen):
    """MOD-002: a window's notional z standard deviations above the trailing baseline."""

    window_seconds: int = Field(60, gt=0)
    baseline_windows: int = Field(30, ge=2)
    min_history: int = Field(10, ge=2)
    z_threshold: float = Field(4.0, gt=0)
    std_floor_usd: float = Field(1_000.0, gt=0)
    min_notional_usd: float = Field(100_000.0, ge=0)

    @model_validator(mode="after")
    def _history_fits_baseline(self) -> VolumeAnomalySettings:
        _check_history(self.min_history, self.baseline_windows)
        return self


class SpreadSettings(Frozen):
    """MOD-003: per-window spread metrics; alerts on a blow-out against the trailing median."""

    window_seconds: int = Field(60, gt=0)
    baseline_windows: int = Field(30, ge=1)
    min_history: int = Field(5, ge=1)
    median_multiple: float = Field(3.0, gt=1)
    max_spread_bps: float = Field(100.0, gt=0)

    @model_validator(mode="after")
    def _history_fits_baseline(self) -> SpreadSettings:
        _check_history(self.min_history, self.baseline_windows)
        return self


def _check_history(min_history: int, baseline_windows: int) -> None:
    """The history is trimmed to ``baseline_windows``, so a larger ``min_history`` would never be met."""
    if min_history > baseline_windows:
        raise ValueError(
            f"min_history ({min_history}) exceeds baseline_windows ({baseline_windows}): the detector "
            "could never alert; lower min_history or raise baseline_windows"
        )


class DataQualitySettings(Frozen):
    """MOD-004: rule thresholds; every rule has a reason code (docs/DETECTORS.md)."""

    price_band_pct: float = Field(20.0, gt=0)
    stale_feed_seconds: int = Field(30, gt=0)
    window_seconds: int = Field(60, gt=0)


MODULE_SETTINGS: dict[str, type[Frozen]] = {
    "MOD-001": WhaleSettings,
    "MOD-002": VolumeAnomalySettings,
    "MOD-003": SpreadSettings,
    "MOD-004": DataQualitySettings,
}


class ModuleSpec(Frozen):
    """One detector module as ``features.yaml`` declares it."""

    name: str
    input: Literal["trades", "quotes", "all"]
    description: str = ""


# --- infrastructure and sizing ---------------------------------------------------------------------


class KinesisConfig(Frozen):
    stream: str = "coattail-events"
    shards: int = Field(2, ge=1, le=64)


class DynamoConfig(Frozen):
    alerts_table: str = "coattail-alerts"
    ttl_hours: int = Field(24, gt=0)


class StorageConfig(Frozen):
    namespace: str = "coattail"
    warehouse_bucket: str = Field("coattail-warehouse", min_length=3)
    checkpoint_bucket: str = Field("coattail-checkpoints", min_length=3)
    glue_database: str = "coattail"
    commit_interval_ms: int = Field(2_000, ge=0)
    """While the stream is busy, table commits (Iceberg) run at most this often, each taking every
    micro-batch spooled since the last (see ``pipeline.router``); an idle stream commits within
    ``pipeline.router.IDLE_COMMIT_S``."""


class LocalSpark(Frozen):
    master: str = "local[2]"
    shuffle_partitions: int = Field(2, ge=1)
    driver_memory: str = "4g"


class EmrSpark(Frozen):
    release: str = "emr-7.5.0"
    instance_type: str = "m6g.xlarge"
    executors: int = Field(2, ge=1)
    executor_cores: int = Field(4, ge=1)
    executor_memory: str = "8g"


class SparkConfig(Frozen):
    local: LocalSpark = LocalSpark()
    emr: EmrSpark = EmrSpark()
    trigger_interval_ms: int = Field(0, ge=0)
    max_records_per_batch: int = Field(200_000, gt=0)
    watermark_seconds: int = Field(10, ge=0)
    keyed_state: Literal["driver", "state_store"] = "driver"
    """Where the per-key detector state lives: ``driver`` (one action per trigger, state saved as JSON
    under the checkpoint; the low-latency path) or ``state_store`` (grouped by key across the cluster in
    Spark's state store; for tiers whose state outgrows one driver). See ``pipeline.runner``."""
    driver_read_max_records: int = Field(20_000, ge=0)
    """Micro-batches of at most this many records are read and parsed by the source on the driver and
    handed to Spark as Arrow, skipping the executors' Python workers (the latency path, see
    ``pipeline.source.kinesis``); bigger ones are read by one task per shard. 0: always the tasks."""


class Budgets(Frozen):
    """Promotion budgets: the end-to-end benchmark's gate fails when one is missed."""

    min_throughput_eps: float = Field(50_000.0, gt=0)
    max_latency_p50_ms: float = Field(400.0, gt=0)
    max_latency_p99_ms: float = Field(1_000.0, gt=0)


class TierFile(Frozen):
    """The shape of ``config/tiers/<tier>.yaml``."""

    tier: TierName
    modules: tuple[str, ...]
    settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    kinesis: KinesisConfig = KinesisConfig()
    dynamodb: DynamoConfig = DynamoConfig()
    storage: StorageConfig = StorageConfig()
    spark: SparkConfig = SparkConfig()
    budgets: Budgets = Budgets()


class FeaturesFile(Frozen):
    """The shape of ``config/features.yaml``."""

    modules: dict[str, ModuleSpec]
    settings: dict[str, dict[str, Any]] = Field(default_factory=dict)


class RuntimeSettings(Frozen):
    """Where the pipeline's services come from (the profile) and where local state lives."""

    profile: ProfileName = "lite"
    aws_endpoint: str | None = None
    region: str = "us-east-1"
    state_dir: Path = Path(".coattail")
    allow_real_aws: bool = False
    # Per-service endpoints that override aws_endpoint, e.g. {"kinesis": kinesis-mock's URL} or, beside
    # LocalStack, {"glue": moto's URL}; read them through pipeline.aws.endpoint_for.
    service_endpoints: dict[str, str] = Field(default_factory=dict)


class Config(Frozen):
    """The resolved configuration of one tier: what every component receives."""

    tier: TierName
    modules: tuple[str, ...]
    module_specs: dict[str, ModuleSpec]
    whale: WhaleSettings
    volume_anomaly: VolumeAnomalySettings
    spread: SpreadSettings
    data_quality: DataQualitySettings
    kinesis: KinesisConfig
    dynamodb: DynamoConfig
    storage: StorageConfig
    spark: SparkConfig
    budgets: Budgets
    runtime: RuntimeSettings = RuntimeSettings()

    def enabled(self, module_id: str) -> bool:
        """Whether a module is switched on in this tier."""
        return module_id in self.modules

    def settings_for(self, module_id: str) -> Frozen:
        """The typed settings of one module."""
        field = _SETTINGS_FIELD.get(module_id)
        if field is None:
            raise ConfigError(f"unknown module id {module_id!r}; known: {sorted(_SETTINGS_FIELD)}")
        value: Frozen = getattr(self, field)
        return value


_SETTINGS_FIELD = {
    "MOD-001": "whale",
    "MOD-002": "volume_anomaly",
    "MOD-003": "spread",
    "MOD-004": "data_quality",
}
_RUNTIME_ENV = {
    "COATTAIL_PROFILE": "profile",
    "COATTAIL_AWS_ENDPOINT": "aws_endpoint",
    "COATTAIL_REGION": "region",
    "COATTAIL_STATE_DIR": "state_dir",
}


AWS_SERVICES = ("kinesis", "dynamodb", "s3", "glue")


def service_endpoint_env(service: str) -> str:
    """The variable holding one service's endpoint override, e.g. ``COATTAIL_KINESIS_ENDPOINT``."""
    return f"COATTAIL_{service.upper()}_ENDPOINT"


def default_config_dir() -> Path:
    """The ``config/`` directory of this checkout (the repository root's)."""
    return Path(__file__).resolve().parent.parent / "config"


class ConfigLoader:
    """Loads and resolves a tier's configuration with the documented precedence."""

    def __init__(self, config_dir: Path | None = None) -> None:
        self.config_dir = config_dir or default_config_dir()

    def load(
        self,
        tier: str = "small",
        *,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Config:
        """Resolve ``tier``; ``env`` defaults to ``os.environ``, ``overrides`` are dotted keys."""
        if tier not in TIERS:
            raise ConfigError(f"unknown tier {tier!r}; choose one of {', '.join(TIERS)}")
        env = os.environ if env is None else env
        features_path = self.config_dir / "features.yaml"
        tier_path = self.config_dir / "tiers" / f"{tier}.yaml"
        features = _parse(FeaturesFile, _read_yaml(features_path), features_path)
        raw_tier = _read_yaml(tier_path)
        env_layer = {
            k[len(ENV_PREFIX) :].lower().replace("__", "."): _scalar(v)
            for k, v in env.items()
            if k.startswith(ENV_PREFIX)
        }
        for source, layer in (("environment", env_layer), ("override", dict(overrides or {}))):
            for dotted, value in layer.items():
                _set_dotted(raw_tier, dotted, value, source)
        tier_file = _parse(TierFile, raw_tier, tier_path)
        if tier_file.tier != tier:
            raise ConfigError(f"{tier_path}: says tier {tier_file.tier!r}, expected {tier!r}")
        unknown = [m for m in tier_file.modules if m not in features.modules]
        if unknown:
            raise ConfigError(
                f"{tier_path}: modules {unknown} are not declared in {features_path}"
            )
        module_settings: dict[str, Any] = {}
        for module_id, field in _SETTINGS_FIELD.items():
            merged = {**features.settings.get(module_id, {}), **tier_file.settings.get(module_id, {})}
            origin = tier_path if module_id in tier_file.settings else features_path
            module_settings[field] = _parse(MODULE_SETTINGS[module_id], merged, origin, module_id)
        stray = set(tier_file.settings) - set(_SETTINGS_FIELD)
        if stray:
            raise ConfigError(f"{tier_path}: settings for unknown modules {sorted(stray)}")
        runtime_raw: dict[str, Any] = {f: env[k] for k, f in _RUNTIME_ENV.items() if k in env}
        service_endpoints = {
            service: env[key] for service in AWS_SERVICES if (key := service_endpoint_env(service)) in env
        }
        if service_endpoints:
            runtime_raw["service_endpoints"] = service_endpoints
        return Config(
            tier=tier_file.tier,
            modules=tier_file.modules,
            module_specs=features.modules,
            kinesis=tier_file.kinesis,
            dynamodb=tier_file.dynamodb,
            storage=tier_file.storage,
            spark=tier_file.spark,
            budgets=tier_file.budgets,
            runtime=_parse(RuntimeSettings, runtime_raw, Path("environment")),
            **module_settings,
        )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"config file {path} does not exist") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _parse(model: type[M], data: Any, origin: Path, section: str = "") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in ([section] if section else []) + list(err['loc']))}: "
            f"{'unknown key' if err['type'] == 'extra_forbidden' else err['msg']}"
            for err in e.errors()
        )
        raise ConfigError(f"{origin}: {problems}") from e


def _scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any, source: str) -> None:
    parts = [p for p in dotted.split(".") if p]
    if len(parts) > 1 and parts[0] == "settings":
        parts[1] = parts[1].upper()  # module ids are upper case; environment keys arrive lower-cased
    if not parts:
        raise ConfigError(f"{source}: empty config key")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: {dotted!r} goes through {part!r}, which is not a section")
        node = child
    node[parts[-1]] = value
