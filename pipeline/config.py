"""Typed, frozen configuration and the one place it is loaded (``ConfigLoader``).

Precedence, lowest first: ``config/features.yaml`` < ``config/tiers/<tier>.yaml`` < environment variables
(``COATTAIL__SECTION__KEY=value``) < explicit overrides (``section.key=value`` from the command line).
Every model rejects unknown keys; errors name the key and where it came from (a file, a ``--set`` or an
environment variable). Module settings merge features < tier file per setting; an override's dotted key
below a setting changes that one entry of it.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Any, Literal, TypeVar, Union, cast, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from core.errors import ConfigError
from core.frozen import Frozen
from pipeline.detectors.registry import ModuleRegistry
from pipeline.emr import EMR_RELEASES, worker_size_problem
from pipeline.instruments import InstrumentsConfig
from pipeline.onchain import TokensConfig, WalletsConfig

TierName = Literal["small", "medium", "large"]
ProfileName = Literal["lite", "mirror", "aws"]
TIERS: tuple[TierName, ...] = ("small", "medium", "large")
ENV_PREFIX = "COATTAIL__"
M = TypeVar("M", bound=BaseModel)
S = TypeVar("S", bound=Frozen)


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
    format: Literal["iceberg", "delta"] = "iceberg"
    """The table format: Iceberg (pyiceberg's or Spark's writer, ``writer``) or Delta (delta-spark, whose
    tables live under ``<state_dir>/delta`` in ``lite``; see ``pipeline.sinks.delta``)."""
    writer: Literal["pyiceberg", "spark"] = "pyiceberg"
    """Who commits Iceberg tables: pyiceberg on the driver, or Spark's Iceberg runtime with EMR's catalog
    properties (``pipeline.sinks.spark_catalog``). Delta is always written by Spark."""
    maintenance_every_commits: int | None = Field(None, ge=0)
    """Table maintenance (``TableSink.maintain``: expire old snapshots keeping the exactly-once batch
    markers; Spark's writers also compact small files) runs after this many commits to a table, on the
    thread that commits, so it never races the table's writer; 0: never; unset: the writer's own
    interval. pyiceberg's is 20: its append costs grow with the snapshots a table holds
    (``benchmarks/bench_iceberg_commits.py``: every 20 commits keeps them flat, every 100 doubles their
    mean). Spark's Iceberg writer and Delta's are 100: their maintenance also compacts files, a Spark
    job each time."""
    retain_snapshots: int = Field(5, ge=1)
    """Iceberg snapshots maintenance keeps (the newest ones); older ones are expired."""
    commit_interval_ms: int = Field(2_000, ge=0)
    """While the stream is busy, table commits (Iceberg) run at most this often, each taking every
    micro-batch spooled since the last (see ``pipeline.router``); an idle stream commits within
    ``pipeline.router.IDLE_COMMIT_S``."""


class LocalSpark(Frozen):
    master: str = "local[2]"
    shuffle_partitions: int = Field(2, ge=1)
    driver_memory: str = "4g"


class EmrWorker(Frozen):
    """One EMR Serverless worker (a driver or an executor): checked against the sizes EMR allows."""

    vcpu: int
    memory_gb: int
    disk_gb: int = 20

    @model_validator(mode="after")
    def _allowed_size(self) -> EmrWorker:
        problem = worker_size_problem(self.vcpu, self.memory_gb, self.disk_gb)
        if problem:
            raise ValueError(problem)
        return self


class EmrInitialCapacity(Frozen):
    """Workers EMR Serverless keeps initialized, so a job starts without waiting for them."""

    drivers: int = Field(1, ge=0)
    executors: int = Field(2, ge=0)


class EmrMaximumCapacity(Frozen):
    """The most the application may scale to, summed over all its workers."""

    vcpu: int = Field(gt=0)
    memory_gb: int = Field(gt=0)
    disk_gb: int = Field(gt=0)


class EmrSpark(Frozen):
    """The EMR Serverless application of a tier: its release and sizes (EMR Serverless has no instance
    types). The release's versions live in ``pipeline.emr``."""

    release: str = "emr-spark-8.0.0"
    driver: EmrWorker = EmrWorker(vcpu=4, memory_gb=16)
    executor: EmrWorker = EmrWorker(vcpu=4, memory_gb=16)
    initial_capacity: EmrInitialCapacity = EmrInitialCapacity()
    maximum_capacity: EmrMaximumCapacity = EmrMaximumCapacity(vcpu=48, memory_gb=192, disk_gb=240)

    @field_validator("release")
    @classmethod
    def _known_release(cls, v: str) -> str:
        if v not in EMR_RELEASES:
            raise ValueError(f"unknown EMR release {v!r}; known: {', '.join(sorted(EMR_RELEASES))}")
        return v

    @model_validator(mode="after")
    def _initial_fits_maximum(self) -> EmrSpark:
        initial = self.initial_capacity
        workers = ((self.driver, initial.drivers), (self.executor, initial.executors))
        for unit in ("vcpu", "memory_gb", "disk_gb"):
            needed = sum(getattr(worker, unit) * count for worker, count in workers)
            limit = getattr(self.maximum_capacity, unit)
            if needed > limit:
                raise ValueError(
                    f"initial_capacity needs {needed} {unit} but maximum_capacity.{unit} is {limit}; "
                    "raise the maximum or initialize fewer workers"
                )
        return self


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
    ``pipeline.source.kinesis``); bigger ones are read by one task per shard. 0: always the tasks. The
    small tier (driver mode) sets it to its whole batch: see docs/ADR.md."""


class Budgets(Frozen):
    """Promotion budgets: the end-to-end benchmark's gate fails when one is missed.

    Speed: throughput at max speed; latency paced (alerts' p50 sent -> DynamoDB written, every event's
    p99 scheduled -> results). Quality, against the baseline on the same tape (``coattail bench``):
    labels the baseline hit and the candidate missed, alert differences the candidate's release notes
    do not declare, how far a module's recall may fall, and how much less following the candidate's
    signals (MOD-011) may make in the backtest."""

    min_throughput_eps: float = Field(50_000.0, gt=0)
    max_latency_p50_ms: float = Field(400.0, gt=0)
    max_latency_p99_ms: float = Field(1_000.0, gt=0)
    max_lost_labels: int = Field(0, ge=0)
    max_undeclared_alert_changes: int = Field(0, ge=0)
    max_recall_drop: float = Field(0.0, ge=0, le=1)
    max_pnl_drop_usd: float = Field(0.0, ge=0)


class TierFile(Frozen):
    """The shape of ``config/tiers/<tier>.yaml``."""

    tier: TierName
    modules: tuple[str, ...]
    settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    instruments: tuple[str, ...] = ()
    """The instruments this deployment trades, as ``exchange:symbol``, each listed in
    ``config/instruments.yaml``; the asset and global stage waits for each of them (``pipeline.cross``)
    and needs the list when one of its modules is enabled."""
    kinesis: KinesisConfig = KinesisConfig()
    dynamodb: DynamoConfig = DynamoConfig()
    storage: StorageConfig = StorageConfig()
    spark: SparkConfig = SparkConfig()
    budgets: Budgets = Budgets()


class FeaturesFile(Frozen):
    """The shape of ``config/features.yaml``: each module's default settings, by module id.

    What a module is (name, inputs, key scope, settings model) is declared once, in its own module
    under ``pipeline/detectors/`` (see ``pipeline.detectors.registry``); this file carries defaults only.
    """

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
    settings: dict[str, SerializeAsAny[Frozen]]
    """Typed settings of every registered module (enabled or not), by module id."""
    instruments: InstrumentsConfig
    active_instruments: tuple[tuple[str, str], ...] = ()
    """The tier's ``instruments`` as ``(exchange, symbol)`` pairs, each listed in the registry."""
    kinesis: KinesisConfig
    dynamodb: DynamoConfig
    storage: StorageConfig
    spark: SparkConfig
    budgets: Budgets
    runtime: RuntimeSettings = RuntimeSettings()
    tokens: TokensConfig = TokensConfig()
    """The token table (``config/tokens.yaml``): stablecoins and the wrapped-token mapping."""
    wallets: WalletsConfig = WalletsConfig()
    """Wallet labels (``config/wallets.yaml``) for MOD-010."""

    @field_validator("settings", mode="before")
    @classmethod
    def _typed_settings(cls, value: Any, info: ValidationInfo) -> Any:
        """Settings read back from JSON (a run directory's config) become their modules' models again.

        A plugin's module is known only to the registry it was registered with: pass it as
        ``Config.model_validate(data, context={"registry": registry})``.
        """
        if not isinstance(value, Mapping):
            return value
        registry = (info.context or {}).get("registry") or ModuleRegistry()
        declared = registry.declared()
        out: dict[str, Any] = {}
        for module_id, raw in value.items():
            if isinstance(raw, Frozen):
                out[module_id] = raw
            elif module_id in declared:
                out[module_id] = declared[module_id].settings_model.model_validate(raw)
            else:
                raise ValueError(
                    f"settings of {module_id}, a module this registry does not know: register it "
                    "(ModuleRegistry.register) and pass the registry as the validation context"
                )
        return out

    def enabled(self, module_id: str) -> bool:
        """Whether a module is switched on in this tier."""
        return module_id in self.modules

    def settings_for(self, module_id: str) -> Frozen:
        """The typed settings of one module, by id."""
        try:
            return self.settings[module_id]
        except KeyError as e:
            raise ConfigError(f"unknown module id {module_id!r}; known: {sorted(self.settings)}") from e

    def settings_of(self, model: type[S]) -> S:
        """The settings whose model is ``model`` (e.g. ``config.settings_of(WhaleSettings)``)."""
        return cast(S, self.settings[self._module_with(model)])

    def with_settings(self, *values: Frozen) -> Config:
        """A copy whose modules of the given settings' types use these values instead."""
        settings = dict(self.settings)
        for value in values:
            settings[self._module_with(type(value))] = value
        return self.model_copy(update={"settings": settings})

    def _module_with(self, model: type[Frozen]) -> str:
        """The id of the one module whose settings model is ``model``."""
        ids = [m for m, v in self.settings.items() if type(v) is model]
        if len(ids) != 1:
            raise ConfigError(f"{len(ids)} registered modules have settings of type {model.__name__}")
        return ids[0]


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

    def __init__(self, config_dir: Path | None = None, registry: ModuleRegistry | None = None) -> None:
        self.config_dir = config_dir or default_config_dir()
        self.registry = registry or ModuleRegistry()

    def load(
        self,
        tier: str = "small",
        *,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Config:
        """Resolve ``tier``; ``env`` defaults to ``os.environ``, ``overrides`` are dotted keys whose text
        values are read against their field's type (other values are taken as they are)."""
        if tier not in TIERS:
            raise ConfigError(f"unknown tier {tier!r}; choose one of {', '.join(TIERS)}")
        env = os.environ if env is None else env
        registry = self.registry
        features_path = self.config_dir / "features.yaml"
        tier_path = self.config_dir / "tiers" / f"{tier}.yaml"
        features = parse_model(FeaturesFile, read_yaml(features_path), features_path)
        raw_tier = read_yaml(tier_path)
        own = parse_model(TierFile, raw_tier, tier_path)
        declared = registry.declared()
        for origin, layer in ((features_path, features.settings), (tier_path, own.settings)):
            stray = sorted(set(layer) - set(declared))
            if stray:
                raise ConfigError(f"{origin}: settings for unknown modules {stray}")
        # module settings merge features < tier file per setting; the overrides then go into that merged
        # tree, so a dotted key below a setting (thresholds_usd.BTCUSDT) overrides that one entry
        tree = copy.deepcopy(raw_tier)
        tree["settings"] = {
            module_id: copy.deepcopy(
                {**features.settings.get(module_id, {}), **own.settings.get(module_id, {})}
            )
            for module_id in declared
        }
        origins: dict[tuple[str, ...], str] = {}
        for name, text in env.items():
            if name.startswith(ENV_PREFIX):
                dotted = name[len(ENV_PREFIX) :].replace("__", ".")
                _override(tree, dotted, text, f"environment variable {name}", registry, origins, strict=True)
        for dotted, value in (overrides or {}).items():
            shown = value if isinstance(value, str) else json.dumps(value, default=str)
            _override(tree, dotted, value, f"--set {dotted}={shown}", registry, origins, strict=False)
        tier_file = parse_model(TierFile, tree, tier_path, origins=origins)
        if tier_file.tier != tier:
            raise ConfigError(f"{tier_path}: says tier {tier_file.tier!r}, expected {tier!r}")
        unknown = [m for m in tier_file.modules if m not in declared]
        if unknown:
            raise ConfigError(
                f"{_origin_of(('modules',), origins, tier_path)}: modules {unknown} are not registered; "
                f"known: {', '.join(sorted(declared))}"
            )
        stray = sorted(set(tier_file.settings) - set(declared))
        if stray:
            where = _origin_of(("settings", stray[0]), origins, tier_path)
            raise ConfigError(f"{where}: settings for unknown modules {stray}")
        module_settings: dict[str, Frozen] = {}
        for module_id, cls in declared.items():
            origin = tier_path if module_id in own.settings else features_path
            below = {
                path[2:]: label for path, label in origins.items() if path[:2] == ("settings", module_id)
            }
            module_settings[module_id] = parse_model(
                cls.settings_model, tier_file.settings[module_id], origin, module_id, origins=below
            )
        instruments_path = self.config_dir / "instruments.yaml"
        instruments = parse_model(InstrumentsConfig, read_yaml(instruments_path), instruments_path)
        runtime_raw: dict[str, Any] = {f: env[k] for k, f in _RUNTIME_ENV.items() if k in env}
        service_endpoints = {
            service: env[key] for service in AWS_SERVICES if (key := service_endpoint_env(service)) in env
        }
        if service_endpoints:
            runtime_raw["service_endpoints"] = service_endpoints
        return Config(
            tier=tier_file.tier,
            modules=tier_file.modules,
            settings=module_settings,
            instruments=instruments,
            active_instruments=_active_instruments(tier_file.instruments, instruments, tier_path),
            kinesis=tier_file.kinesis,
            dynamodb=tier_file.dynamodb,
            storage=tier_file.storage,
            spark=tier_file.spark,
            budgets=tier_file.budgets,
            runtime=parse_model(RuntimeSettings, runtime_raw, Path("environment")),
            **_onchain(self.config_dir, instruments),
        )


def _active_instruments(
    names: tuple[str, ...], registry: InstrumentsConfig, origin: Path
) -> tuple[tuple[str, str], ...]:
    out = []
    for name in names:
        exchange, sep, symbol = name.partition(":")
        if not sep or registry.get(exchange, symbol) is None:
            raise ConfigError(
                f"{origin}: instruments: {name!r} is not an exchange:symbol listed in "
                "config/instruments.yaml; add it there or correct the name"
            )
        out.append((exchange, symbol))
    return tuple(out)


def _onchain(config_dir: Path, instruments: InstrumentsConfig) -> dict[str, Any]:
    """The token table and wallet labels of a config directory, where it has them; a ``ConfigError``
    when a stablecoin counts for a market without a reference instrument (its flows would reach none)."""
    found: dict[str, Any] = {}
    for name, model in (("tokens", TokensConfig), ("wallets", WalletsConfig)):
        path = config_dir / f"{name}.yaml"
        if path.is_file():
            found[name] = parse_model(model, read_yaml(path), path)
    tokens: TokensConfig = found.get("tokens", TokensConfig())
    for coin, market in sorted(tokens.stablecoin_markets.items()):
        if market not in instruments.reference:
            raise ConfigError(
                f"{config_dir / 'tokens.yaml'}: stablecoin_markets.{coin}: {market!r} has no reference "
                f"instrument; name one of {sorted(instruments.reference)} or add its `reference` to "
                "config/instruments.yaml"
            )
    return found


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML file holding a mapping; a ``ConfigError`` naming the file when it is missing or malformed."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"config file {path} does not exist") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def parse_model(
    model: type[M],
    data: Any,
    origin: Path,
    section: str = "",
    *,
    origins: Mapping[tuple[str, ...], str] | None = None,
) -> M:
    """``data`` as ``model``; a ``ConfigError`` naming every bad key (under ``section``) with where it came
    from: the override that set it (``origins``: key path -> e.g. ``--set kinesis.stream=x``), else
    ``origin``."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems: dict[str, list[str]] = {}
        for err in e.errors():
            loc = tuple(str(p) for p in err["loc"])
            where = _origin_of(loc, origins or {}, origin)
            key = ".".join(([section] if section else []) + list(loc))
            message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            problems.setdefault(where, []).append(f"{key}: {message}")
        raise ConfigError("; ".join(f"{where}: {'; '.join(p)}" for where, p in problems.items())) from e


def _origin_of(loc: tuple[str, ...], origins: Mapping[tuple[str, ...], str], default: Path) -> str:
    """Where the value at ``loc`` came from: the override that set it or a section above it (the deepest),
    else ``default`` together with the overrides of keys below it (a section's own check, like an EMR
    worker's size, judges the file's keys and the overridden ones together)."""
    for depth in range(len(loc), 0, -1):
        if loc[:depth] in origins:
            return origins[loc[:depth]]
    below = [label for path, label in origins.items() if path[: len(loc)] == loc]
    return " with ".join([str(default), *below])


def _unwrap(tp: Any) -> Any:
    """``X`` of ``X | None``; other types as they are."""
    args = [a for a in get_args(tp) if a is not type(None)]
    if get_origin(tp) in (Union, UnionType) and len(args) == 1:
        return args[0]
    return tp


def _child(tp: Any, part: str, node: Any, *, strict: bool, source: str) -> tuple[str, Any]:
    """The key ``part`` names below a value of type ``tp`` (whose current value is ``node``) and that
    key's type (``None``: unknown, the model's validation judges it).

    Environment names arrive upper-case and cannot hold ``-``: they match a model's field or an existing
    mapping key case-insensitively with ``_`` for ``-`` (``MOD_001`` is ``MOD-001``); with ``strict`` (the
    environment) a mapping key that matches nothing is refused, as it would be set under a name nothing
    reads (``btcusdt``). A ``--set`` key that matches no existing key adds it as written.
    """
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        name = part.lower() if strict else part
        field = tp.model_fields.get(name)
        return name, None if field is None else field.annotation
    if get_origin(tp) not in (dict, Mapping):
        return part, None
    value_type = get_args(tp)[1] if get_args(tp) else None
    known = list(node) if isinstance(node, dict) else []
    if part in known:
        return part, value_type
    folded = [k for k in known if _fold(k) == _fold(part)]
    if len(folded) == 1:
        return folded[0], value_type
    if strict:
        raise ConfigError(
            f"{source}: {part!r} matches none of the keys {sorted(known)}; "
            "add a new key in the tier file or with --set"
        )
    return part, value_type


def _fold(key: str) -> str:
    return key.upper().replace("-", "_")


def _override(
    tree: dict[str, Any],
    dotted: str,
    value: Any,
    source: str,
    registry: ModuleRegistry,
    origins: dict[tuple[str, ...], str],
    *,
    strict: bool,
) -> None:
    """Set ``dotted`` in ``tree`` to ``value`` and record ``source`` as its origin in ``origins``.

    Text is parsed against the type of the field it sets: a string field takes it as it is (a stream
    named ``2024`` or ``no``), any other field reads it as YAML (``4``, ``true``, ``[a, b]``).
    """
    parts = [p for p in dotted.split(".") if p]
    if not parts:
        raise ConfigError(f"{source}: empty config key")
    declared = registry.declared()
    node: Any = tree
    tp: Any = TierFile
    path: list[str] = []
    for i, part in enumerate(parts):
        key, tp = _child(tp, part, node, strict=strict, source=source)
        if path == ["settings"] and key in declared:  # a module's settings have their own model
            tp = declared[key].settings_model
        path.append(key)
        if i == len(parts) - 1:
            break
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(
                f"{source}: {'.'.join(path)} is a value, not a section with a key {parts[i + 1]!r}"
            )
        node = child
    node[path[-1]] = _typed(value, tp)
    origins[tuple(path)] = source


def _typed(value: Any, tp: Any) -> Any:
    """``value`` for a field of type ``tp``: text stays text for a string field, else it is read as YAML."""
    if not isinstance(value, str):
        return value
    tp = _unwrap(tp)
    if tp in (str, Path) or (get_origin(tp) is Literal and all(isinstance(a, str) for a in get_args(tp))):
        return value
    if not value.strip():
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value
