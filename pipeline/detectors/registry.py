"""``ModuleRegistry``: detector modules by id, switched on by ``Config.modules``.

Built-in modules are listed in ``BUILTIN_MODULES`` as ``"package.module:Class"`` and imported only when
a tier enables them, so a module's dependencies cost nothing when it is off. A new module adds one line
there (or calls ``ModuleRegistry.register`` for a plugin outside this package).
"""

from __future__ import annotations

import importlib
from typing import Final

from core.errors import ConfigError, PipelineError
from pipeline.config import Config
from pipeline.detectors.base import BaseDetector

BUILTIN_MODULES: Final[dict[str, str]] = {
    "MOD-001": "pipeline.detectors.whale:WhaleDetector",
    "MOD-002": "pipeline.detectors.volume_anomaly:VolumeAnomalyDetector",
    "MOD-003": "pipeline.detectors.spread:SpreadDetector",
    "MOD-004": "pipeline.detectors.data_quality:DataQualityDetector",
}


class ModuleRegistry:
    """Maps module ids to detector classes; ``build(config)`` instantiates the enabled ones."""

    def __init__(self, modules: dict[str, str | type[BaseDetector]] | None = None) -> None:
        self._modules: dict[str, str | type[BaseDetector]] = dict(
            BUILTIN_MODULES if modules is None else modules
        )

    def register(self, cls: type[BaseDetector]) -> type[BaseDetector]:
        """Register a detector class under its ``module_id`` (usable as a decorator)."""
        self._modules[cls.module_id] = cls
        return cls

    def ids(self) -> list[str]:
        """Every registered module id, sorted."""
        return sorted(self._modules)

    def get(self, module_id: str) -> type[BaseDetector]:
        """The class of one module; ``ConfigError`` for an unknown id, ``PipelineError`` when missing."""
        entry = self._modules.get(module_id)
        if entry is None:
            raise ConfigError(f"unknown detector module {module_id!r}; registered: {', '.join(self.ids())}")
        if not isinstance(entry, str):
            return entry
        module_name, _, class_name = entry.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as e:
            raise PipelineError(
                f"module {module_id} is enabled but its implementation {entry} cannot be loaded ({e}); "
                f"switch it off in the tier file or install it"
            ) from e
        if not (isinstance(cls, type) and issubclass(cls, BaseDetector)) or cls.module_id != module_id:
            raise PipelineError(f"{entry} is not a BaseDetector with module_id {module_id!r}")
        self._modules[module_id] = cls
        return cls

    def build(self, config: Config) -> list[BaseDetector]:
        """The enabled detectors of ``config``, in the tier's module order."""
        return [self.get(module_id)(config) for module_id in config.modules]
