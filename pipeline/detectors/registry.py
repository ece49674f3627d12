"""``ModuleRegistry``: every detector module by id, found where it is declared.

A detector module is one file under ``pipeline/detectors/`` whose ``BaseDetector`` subclass declares
everything about it (id, name, inputs, key scope, the modules it consumes, its settings model); the
registry imports the package's modules once and collects those classes, so adding MOD-00N is one file
plus its section in docs/DETECTORS.md. ``config/features.yaml`` holds defaults only and a tier file
switches modules on. A plugin outside this package calls ``ModuleRegistry.register``.

``build(config)`` returns the enabled detectors in **run order**: a module runs after every module it
consumes (``consumes``), otherwise in id order, so a batch, a micro-batch and the reprocessor all see
the same upstream outputs.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import cache
from typing import TYPE_CHECKING, Final

from core.errors import ConfigError, PipelineError
from pipeline import detectors
from pipeline.detectors.base import AnyDetector, BaseDetector, CrossDetector

if TYPE_CHECKING:
    from pipeline.config import Config

_NOT_MODULES: Final = frozenset({"base", "registry"})
"""Modules of the package that hold shared machinery, not detectors (they are imported anyway by the
detectors that need them; skipping them only saves the scan)."""


@cache
def discover() -> dict[str, type[AnyDetector]]:
    """Every concrete ``BaseDetector`` declared in a module of ``pipeline.detectors``, by module id
    (scanned once per process; callers get a copy through ``ModuleRegistry``)."""
    found: dict[str, type[AnyDetector]] = {}
    for info in sorted(pkgutil.iter_modules(detectors.__path__), key=lambda i: i.name):
        if info.name in _NOT_MODULES:
            continue
        module = importlib.import_module(f"{detectors.__name__}.{info.name}")
        declared = [
            cls for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, BaseDetector)
            and cls.__module__ == module.__name__
            and not inspect.isabstract(cls)
            and "module_id" in vars(cls)
        ]
        # the instrument half of an asset module shares its id: the module stands for it
        feeds = {cls.feed for cls in declared if issubclass(cls, CrossDetector) and cls.feed is not None}
        for cls in declared:
            if cls in feeds:
                continue
            other = found.get(cls.module_id)
            if other is not None and other is not cls:
                raise PipelineError(
                    f"module id {cls.module_id} is declared twice: {other.__module__}.{other.__name__} "
                    f"and {cls.__module__}.{cls.__name__}; give one of them a new id"
                )
            found[cls.module_id] = cls
    return found


class ModuleRegistry:
    """Module ids to detector classes; ``build(config)`` instantiates the enabled ones in run order."""

    def __init__(self, modules: dict[str, type[AnyDetector]] | None = None) -> None:
        self._modules: dict[str, type[AnyDetector]] = dict(discover() if modules is None else modules)

    def register(self, cls: type[AnyDetector]) -> type[AnyDetector]:
        """Register a detector class under its ``module_id`` (usable as a decorator)."""
        cls.check_declaration()
        self._modules[cls.module_id] = cls
        return cls

    def declared(self) -> dict[str, type[AnyDetector]]:
        """Every registered class by module id (sorted by id)."""
        return dict(sorted(self._modules.items()))

    def ids(self) -> list[str]:
        """Every registered module id, sorted."""
        return sorted(self._modules)

    def get(self, module_id: str) -> type[AnyDetector]:
        """The class of one module; ``ConfigError`` for an unknown id."""
        cls = self._modules.get(module_id)
        if cls is None:
            raise ConfigError(f"unknown detector module {module_id!r}; registered: {', '.join(self.ids())}")
        return cls

    def run_order(self, module_ids: tuple[str, ...] | list[str]) -> list[str]:
        """``module_ids`` ordered so that each runs after the modules it consumes, else by id.

        A consumed module that is not enabled, a consumer of a wider scope than it may read, or a cycle
        is a ``ConfigError`` naming the modules.
        """
        enabled = set(module_ids)
        for module_id in sorted(enabled):
            cls = self.get(module_id)
            for upstream in cls.consumes:
                if upstream not in enabled:
                    raise ConfigError(
                        f"{module_id} ({cls.name}) consumes {upstream}, which this tier does not enable; "
                        f"add {upstream} to the tier's modules"
                    )
                up = self.get(upstream)
                if cls.scope != "instrument" and up.scope != "instrument":
                    raise ConfigError(
                        f"{module_id} consumes {upstream}: both are {cls.scope}/{up.scope}-scoped, and the "
                        "asset and global stage feeds its modules instrument modules' alerts only"
                    )
                if cls.scope == "instrument" and up.scope != "instrument":
                    raise ConfigError(
                        f"{module_id} works per instrument and cannot consume {upstream}, whose scope is "
                        f"{up.scope!r}: an instrument-scoped module runs before the {up.scope} stage"
                    )
        ordered: list[str] = []
        remaining = sorted(enabled)
        while remaining:
            ready = [m for m in remaining if all(u in ordered for u in self.get(m).consumes)]
            if not ready:
                raise ConfigError(f"modules {remaining} consume each other in a cycle")
            ordered.append(ready[0])
            remaining.remove(ready[0])
        return ordered

    def build(self, config: Config) -> list[AnyDetector]:
        """The enabled detectors of ``config``, in run order."""
        return [self.get(module_id)(config) for module_id in self.run_order(config.modules)]
