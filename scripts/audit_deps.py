"""The dependency audit (`make audit`, `.ci/run`): pip-audit over requirements.lock.

Fails (exit 1) on a known vulnerability whose id is not in the allow-list (``.ci/audit-allowlist.txt``,
one id a line with the reason after ``#``). pip-audit asks PyPI's per-release JSON API, then OSV; when
neither answers, every dependency is skipped and pip-audit itself still says "No known vulnerabilities
found". This script never reports that as a pass: it says the audit was not done and why, and exits 0
so that an unreachable service does not fail CI (``--require-service`` makes it exit 2 instead).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ALLOW_LIST = REPO / ".ci" / "audit-allowlist.txt"


def allowed(path: Path) -> dict[str, str]:
    """Allow-listed vulnerability ids -> the reason written next to them."""
    out: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            vid, _, reason = line.partition("#")
            if vid.strip():
                out[vid.strip()] = reason.strip()
    return out


def audit(lock: Path, service: str) -> tuple[dict[str, Any] | None, str]:
    """pip-audit's JSON report for ``lock`` with ``service`` (None and its error text when it failed)."""
    command = [
        sys.executable, "-m", "pip_audit", "-r", str(lock), "--disable-pip", "--no-deps",
        "--format", "json", "--progress-spinner", "off", "--vulnerability-service", service,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    try:
        return json.loads(done.stdout), done.stderr
    except json.JSONDecodeError:
        return None, (done.stderr.strip().splitlines() or [f"pip-audit exited {done.returncode}"])[-1]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lock", type=Path, default=REPO / "requirements.lock")
    parser.add_argument(
        "--require-service", action="store_true", help="exit 2 when nothing could be audited"
    )
    args = parser.parse_args()
    allow = allowed(ALLOW_LIST)
    problems: list[str] = []
    for service in ("pypi", "osv"):
        report, error = audit(args.lock, service)
        if report is None:
            problems.append(f"{service}: {error}")
            continue
        deps = report["dependencies"]
        audited = [d for d in deps if "skip_reason" not in d]
        if not audited:
            reason = deps[0]["skip_reason"] if deps else "no dependency listed"
            problems.append(f"{service}: every dependency skipped (e.g. {reason})")
            continue
        found = [(d, v) for d in audited for v in d["vulns"] if v["id"] not in allow]
        waived = [(d, v) for d in audited for v in d["vulns"] if v["id"] in allow]
        for d, v in waived:
            print(f"allow-listed: {d['name']} {d['version']} {v['id']} ({allow[v['id']]})")
        skipped = len(deps) - len(audited)
        print(f"dependency audit ({service}): {len(audited)} packages audited, {skipped} skipped, "
              f"{len(found)} known vulnerabilities not allow-listed")
        for d, v in found:
            fixes = ", ".join(v.get("fix_versions", [])) or "no fixed release"
            print(f"  {d['name']} {d['version']}: {v['id']} (fixed in {fixes})")
        if found:
            print("upgrade them (`make lock PIP_COMPILE_ARGS='--upgrade-package NAME'`), or allow-list an "
                  f"id with its reason in {ALLOW_LIST.relative_to(REPO)}")
            return 1
        return 0
    print("dependency audit NOT DONE: no vulnerability service answered from this machine")
    for problem in problems:
        print(f"  {problem}")
    print("  (pip-audit needs PyPI's per-release JSON API, https://pypi.org/pypi/NAME/VERSION/json, or "
          "https://api.osv.dev; run `make audit` where one is reachable)")
    return 2 if args.require_service else 0


if __name__ == "__main__":
    sys.exit(main())
