"""The import rules of the layout (README "Layout"): a layer imports only the layers below it.

``core`` < ``pipeline`` < ``sim``, ``replay``, ``infra`` (side by side) < ``coattail`` < ``benchmarks``.
Production code (``core``, ``pipeline``) never imports the harness. Inside a layer, a few rules keep the
contracts where they belong. Every import counts, also inside functions; an import under
``if TYPE_CHECKING:`` counts unless the rule allows type-only imports.
"""

from __future__ import annotations

import ast
import shutil
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LAYER = {"core": 0, "pipeline": 1, "sim": 2, "replay": 2, "infra": 2, "coattail": 3, "benchmarks": 4}


@dataclass(frozen=True)
class Forbidden:
    """Modules under ``importer`` must not import modules under ``imported``."""

    importer: str
    imported: str
    why: str
    type_only_ok: bool = False


RULES = (
    Forbidden("pipeline.detectors", "pipeline.runner", "detectors are functions of frames and config"),
    Forbidden("pipeline.detectors", "pipeline.engine", "the engine drives the detectors, not the reverse"),
    Forbidden("pipeline.detectors", "pipeline.sinks", "detectors never write"),
    Forbidden("pipeline.detectors", "pipeline.source", "detectors never read a stream"),
    Forbidden("coattail.report", "coattail.commands", "the report is built without the command line"),
    Forbidden("coattail.run", "coattail.commands", "a run is orchestrated without the command line"),
    Forbidden("coattail.reference", "pipeline.detectors", "the reference is independent of the detectors",
              type_only_ok=True),
    Forbidden("coattail.reference", "pipeline.engine", "the reference is independent of the detectors"),
)


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports(path: Path, package: str) -> list[tuple[str, int, bool]]:
    """(imported module, line, under TYPE_CHECKING) of every absolute or relative import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    typed = _type_checking_lines(tree)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno, node.lineno in typed) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            out.append((module, node.lineno, node.lineno in typed))
    return out


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(root: Path) -> list[str]:
    """Every import in the tree at ``root`` that breaks the layering or a rule, as readable lines."""
    found = []
    for top, level in LAYER.items():
        for path in sorted((root / top).rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            module = ".".join(rel.parts).removesuffix(".__init__")
            package = module if path.name == "__init__.py" else module.rpartition(".")[0]
            for imported, line, type_only in _imports(path, package):
                head = imported.split(".")[0]
                where = f"{path.relative_to(root)}:{line} imports {imported}"
                if head in LAYER and head != top and LAYER[head] >= level:
                    found.append(f"{where}: layer {top} may not import {head} (same or higher layer)")
                for rule in RULES:
                    hit = _under(module, rule.importer) and _under(imported, rule.imported)
                    if hit and not (type_only and rule.type_only_ok):
                        found.append(f"{where}: {rule.why}")
    return found


def test_the_tree_keeps_its_layers() -> None:
    assert violations(ROOT) == []


def test_a_planted_violation_is_caught(tmp_path: Path) -> None:
    for top in ("core", "pipeline"):
        shutil.copytree(ROOT / top, tmp_path / top)
    assert violations(tmp_path) == []
    events = tmp_path / "core" / "events.py"
    planted = "\n\ndef _late() -> None:\n    from replay import engine  # noqa\n"
    events.write_text(events.read_text() + planted)
    (tmp_path / "pipeline" / "detectors" / "sneaky.py").write_text(
        "from __future__ import annotations\nfrom ..runner import PipelineRunner\n"
    )
    found = violations(tmp_path)
    assert any(v.startswith("core/events.py") and "layer core may not import replay" in v for v in found)
    assert any("sneaky.py:2 imports pipeline.runner" in v for v in found)


def test_type_only_imports_are_allowed_only_where_a_rule_says_so(tmp_path: Path) -> None:
    (tmp_path / "coattail" / "reference").mkdir(parents=True)
    (tmp_path / "coattail" / "reference" / "x.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pipeline.detectors.whale import W\n"
    )
    (tmp_path / "coattail" / "reference" / "y.py").write_text("from pipeline.detectors.whale import W\n")
    found = violations(tmp_path)
    assert len(found) == 1 and found[0].startswith("coattail/reference/y.py:1")
