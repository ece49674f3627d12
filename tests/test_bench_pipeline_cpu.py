"""``benchmarks/bench_pipeline``'s CPU seconds by process group, measured on real child processes."""

from __future__ import annotations

import subprocess
import sys
import time

from benchmarks.bench_pipeline import cpu_seconds, cpu_spent

BURN = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\ntime.sleep(30)"


def test_a_child_s_cpu_is_counted_in_its_group_between_two_snapshots() -> None:
    quiet = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    busy = subprocess.Popen([sys.executable, "-c", BURN])
    try:
        before = cpu_seconds({quiet.pid: "emulator"})
        assert before[quiet.pid][0] == "emulator" and before[busy.pid][0] == "children"
        deadline = time.monotonic() + 20
        while cpu_seconds({})[busy.pid][1] < 0.5 and time.monotonic() < deadline:
            time.sleep(0.05)
        spent = cpu_spent(before, cpu_seconds({quiet.pid: "emulator"}))
        assert spent["children"] >= 0.5 - before[busy.pid][1] - 0.01
        assert spent["emulator"] < 0.1
    finally:
        quiet.kill()
        busy.kill()


def test_a_process_that_started_after_the_first_snapshot_counts_from_zero() -> None:
    spent = cpu_spent({1: ("cli", 2.0)}, {1: ("cli", 3.0), 2: ("spark_python", 0.5)})
    assert spent == {"cli": 1.0, "spark_python": 0.5}
