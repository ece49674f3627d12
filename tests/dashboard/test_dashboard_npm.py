"""The dashboard's own checks, run from ``make test``: Vitest (components, API client), the TypeScript
type check (strict) and ESLint; and the build script's behaviour without Node."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from coattail.dashboard.browser import PROJECT

BUILD_SCRIPT = PROJECT.parent / "scripts" / "build-dashboard.sh"


def _npm(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("npm") is None or not (PROJECT / "node_modules").is_dir():
        why = "npm or dashboard/node_modules is missing: run `make install`"
        if os.environ.get("CI"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    return subprocess.run(
        ["npm", *args], cwd=PROJECT, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.parametrize("script", ["test", "typecheck", "lint"])
def test_dashboard_npm_script_passes(script: str) -> None:
    done = _npm("run", "--silent", script)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]


def test_build_without_node_says_so_and_succeeds(tmp_path: Path) -> None:
    bash = shutil.which("bash")
    assert bash is not None
    # a PATH with the shell's basic tools but no node or npm
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "env"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    done = subprocess.run(
        [bash, str(BUILD_SCRIPT)], env={"PATH": str(bin_dir)}, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "needs Node.js 20.19+ and npm" in done.stderr
