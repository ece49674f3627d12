"""The dependency audit's verdicts (scripts/audit_deps.py): pip-audit's JSON reports stand in for the
vulnerability services, which this machine cannot reach (a unit test of the verdict logic alone)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "audit_deps.py"
spec = importlib.util.spec_from_file_location("audit_deps", SCRIPT)
assert spec is not None and spec.loader is not None
audit_deps: Any = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit_deps)

VULN = {"id": "PYSEC-2099-1", "fix_versions": ["9.9"], "aliases": [], "description": "bad"}
SKIPPED = {"name": "x", "skip_reason": "Dependency not found on PyPI and could not be audited: x (1.0)"}


def _run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, reports: dict[str, Any], allow: str = "",
    *args: str,
) -> int:
    allow_list = tmp_path / "allow.txt"
    allow_list.write_text(allow)
    monkeypatch.setattr(audit_deps, "ALLOW_LIST", allow_list)
    monkeypatch.setattr(audit_deps, "REPO", tmp_path)
    monkeypatch.setattr(audit_deps, "audit", lambda lock, service: reports[service])
    monkeypatch.setattr(sys, "argv", ["audit_deps.py", *args])
    code: int = audit_deps.main()
    return code


def test_a_known_vulnerability_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any) -> None:
    report = {"dependencies": [{"name": "lib", "version": "1.0", "vulns": [VULN]}]}
    assert _run(monkeypatch, tmp_path, {"pypi": (report, "")}) == 1
    assert "lib 1.0: PYSEC-2099-1 (fixed in 9.9)" in capsys.readouterr().out


def test_an_allow_listed_one_passes_and_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    report = {"dependencies": [{"name": "lib", "version": "1.0", "vulns": [VULN]}, SKIPPED]}
    allow = "# accepted\nPYSEC-2099-1  # not reachable from our code\n"
    assert _run(monkeypatch, tmp_path, {"pypi": (report, "")}, allow) == 0
    out = capsys.readouterr().out
    assert "allow-listed: lib 1.0 PYSEC-2099-1 (not reachable from our code)" in out
    assert "1 packages audited, 1 skipped, 0 known vulnerabilities" in out


def test_no_service_answering_is_not_a_pass(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    reports = {"pypi": ({"dependencies": [SKIPPED]}, ""), "osv": (None, "ConnectionError: api.osv.dev")}
    assert _run(monkeypatch, tmp_path, reports) == 0
    out = capsys.readouterr().out
    assert "dependency audit NOT DONE" in out and "api.osv.dev" in out
    assert "packages audited" not in out
    assert _run(monkeypatch, tmp_path, reports, "", "--require-service") == 2
