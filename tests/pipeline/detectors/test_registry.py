"""The detector registry: modules found where they are declared, declarations checked, run order."""

from __future__ import annotations

from typing import Any, ClassVar

import pandas as pd
import pytest

from core.errors import ConfigError, PipelineError
from core.events import EventKind
from core.frozen import Frozen
from pipeline.config import ConfigLoader
from pipeline.detectors.base import (
    AnyDetector,
    BaseDetector,
    CrossDetector,
    DetectorInput,
    DetectorOutput,
    Scope,
)
from pipeline.detectors.basis import BasisDetector, BasisPriceFeed
from pipeline.detectors.registry import ModuleRegistry, discover
from pipeline.detectors.whale import WhaleDetector, WhaleSettings


def _detector(
    module_id: str, *, consumes: tuple[str, ...] = (), scope: Scope = "instrument"
) -> type[AnyDetector]:
    class Probe(BaseDetector[WhaleSettings]):
        inputs: ClassVar[tuple[EventKind, ...]] = ("trade",)
        name: ClassVar[str] = f"probe-{module_id}"
        settings_model: ClassVar[type[Frozen]] = WhaleSettings

        def detect(self, frames: DetectorInput) -> DetectorOutput:
            return DetectorOutput()

    Probe.module_id = module_id
    Probe.consumes = consumes
    Probe.scope = scope
    Probe.check_declaration()
    return Probe


class _AssetProbe(CrossDetector[WhaleSettings]):
    module_id: ClassVar[str] = "MOD-803"
    name: ClassVar[str] = "asset-probe"
    consumes: ClassVar[tuple[str, ...]] = ("MOD-001",)
    settings_model: ClassVar[type[Frozen]] = WhaleSettings

    def new_state(self) -> dict[str, Any]:
        return {}

    def process_group(self, group: str, items: pd.DataFrame, state: Any) -> tuple[DetectorOutput, Any]:
        return DetectorOutput(), state


def test_every_builtin_module_is_discovered_with_its_declaration() -> None:
    found = discover()
    assert sorted(found) == [
        "MOD-001", "MOD-002", "MOD-003", "MOD-004", "MOD-005", "MOD-006", "MOD-007", "MOD-008", "MOD-009",
        "MOD-010", "MOD-011",
    ]
    assert found["MOD-001"] is WhaleDetector
    assert found["MOD-008"].consumes == ("MOD-001", "MOD-007")
    for module_id, cls in found.items():
        assert cls.module_id == module_id and cls.name and cls.description
        expected = ("asset", False) if module_id in ("MOD-005", "MOD-011") else ("instrument", True)
        assert (cls.scope, bool(cls.inputs)) == expected
    # MOD-005's instrument half shares its id and is not a module of its own
    assert found["MOD-005"] is BasisDetector and BasisDetector.feed is BasisPriceFeed


def test_settings_come_from_the_declared_model_with_feature_defaults() -> None:
    config = ConfigLoader().load("small", env={})
    assert set(config.settings) == set(discover())
    whale = config.settings_of(WhaleSettings)
    assert whale is config.settings_for("MOD-001")
    assert whale.threshold("ETHUSDT") == 500_000.0 and whale.threshold("NOPE") == whale.default_threshold_usd


def test_incomplete_declarations_are_refused_by_name() -> None:
    with pytest.raises(PipelineError, match="module_id 'X-1' must look like MOD-012"):
        _detector("X-1")
    with pytest.raises(PipelineError, match="cannot consume its own alerts"):
        _detector("MOD-901", consumes=("MOD-901",))
    with pytest.raises(PipelineError, match="scope 'planet'"):
        _detector("MOD-902", scope="planet")  # type: ignore[arg-type]
    with pytest.raises(PipelineError, match="an asset-scoped module is a CrossDetector"):
        _detector("MOD-903", scope="asset")


def test_run_order_puts_consumers_after_what_they_consume() -> None:
    registry = ModuleRegistry({
        "MOD-001": WhaleDetector,
        "MOD-800": _detector("MOD-800", consumes=("MOD-900",)),
        "MOD-900": _detector("MOD-900", consumes=("MOD-001",)),
        "MOD-950": _detector("MOD-950"),
    })
    assert registry.run_order(["MOD-950", "MOD-800", "MOD-900", "MOD-001"]) == [
        "MOD-001", "MOD-900", "MOD-800", "MOD-950",
    ]
    with pytest.raises(ConfigError, match=r"MOD-800 .* consumes MOD-900, which this tier does not enable"):
        registry.run_order(["MOD-001", "MOD-800"])


def test_cycles_and_scope_inversions_are_refused() -> None:
    registry = ModuleRegistry({
        "MOD-801": _detector("MOD-801", consumes=("MOD-802",)),
        "MOD-802": _detector("MOD-802", consumes=("MOD-801",)),
        "MOD-001": WhaleDetector,
        "MOD-803": _AssetProbe,
        "MOD-804": _detector("MOD-804", consumes=("MOD-803",)),
    })
    with pytest.raises(ConfigError, match="cycle"):
        registry.run_order(["MOD-801", "MOD-802"])
    with pytest.raises(ConfigError, match="MOD-804 works per instrument and cannot consume MOD-803"):
        registry.run_order(["MOD-001", "MOD-803", "MOD-804"])


def test_a_plugin_registers_and_its_settings_load(tmp_path: object) -> None:
    registry = ModuleRegistry()
    registry.register(_detector("MOD-990"))
    config = ConfigLoader(registry=registry).load("small", env={}, overrides={"modules": ["MOD-990"]})
    assert [d.module_id for d in registry.build(config)] == ["MOD-990"]
    assert isinstance(config.settings_for("MOD-990"), WhaleSettings)
