"""What production code pulls in: the registry's discovery and the pipeline's modules import no test
tooling (Hypothesis is a development dependency and is not installed on EMR)."""

from __future__ import annotations

import subprocess
import sys


def test_discovery_and_the_engine_import_no_test_tooling() -> None:
    code = (
        "import sys\n"
        "from pipeline.detectors.registry import discover\n"
        "import pipeline.engine, pipeline.runner, pipeline.testkit, pipeline.cross\n"
        "assert sorted(discover()) == [f'MOD-{i:03d}' for i in range(1, 12)], sorted(discover())\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'hypothesis', 'pytest', 'tests'})\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
