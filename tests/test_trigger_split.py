"""``benchmarks/trigger_split.split``: Spark's durations beside the runner's stamps, per warm trigger."""

from __future__ import annotations

from typing import Any

from benchmarks.trigger_split import split
from core.timefmt import format_us

START_US = 1_796_400_000_000_000


def _report(batch: int, start_us: int, rows: int, add_batch: int) -> dict[str, Any]:
    return {"batchId": batch, "numInputRows": rows, "timestamp": format_us(start_us),
            "durationMs": {"latestOffset": 40, "walCommit": 10, "queryPlanning": 5, "getBatch": 0,
                           "addBatch": add_batch, "triggerExecution": add_batch + 80}}


def _stamps(start_us: int, before_ms: int, collect: int, engine: int, sinks: int) -> dict[str, int]:
    started = start_us + (55 + before_ms) * 1_000  # Spark's timed phases before addBatch: 55 ms
    return {"started_us": started, "collected_us": started + collect * 1_000,
            "results_us": started + (collect + engine) * 1_000,
            "routed_us": started + (collect + engine + sinks) * 1_000}


def test_the_split_of_warm_triggers_adds_up_to_add_batch() -> None:
    starts = [START_US + i * 2_000_000 for i in range(4)]
    progress = [_report(0, starts[0], 5, 9_000), _report(1, starts[1], 0, 10),
                _report(2, starts[2], 100, 700), _report(3, starts[3], 300, 900)]
    stamps = {0: _stamps(starts[0], 8_000, 500, 400, 50), 2: _stamps(starts[2], 200, 250, 200, 20),
              3: _stamps(starts[3], 300, 300, 250, 30)}
    got = split(progress, stamps)
    # the cold first trigger and the one without records are left out: medians of batches 2 and 3
    assert got["triggers"] == 2
    assert got["before"] == 250 and got["collect"] == 275 and got["engine"] == 225 and got["sinks"] == 25
    assert got["after"] == 25  # what addBatch holds beyond the stamps: 700 - 200 - 470, 900 - 300 - 580
    assert got["addBatch"] == 800 and got["rows"] == 200
    assert got["spacing"] == 2_000  # to the next trigger's start (batch 3 is the last: none)
    assert got["idle"] == 2_000 - 780  # outside any trigger: the spacing less triggerExecution


def test_a_batch_spark_counted_no_rows_for_counts_with_the_runners_records() -> None:
    # a batch handed over in a file runs no Spark scan: numInputRows is 0, the runner counted its rows
    starts = [START_US + i * 1_000_000 for i in range(3)]
    progress = [_report(i, starts[i], 0, 300) for i in range(3)]
    stamps = {i: {**_stamps(starts[i], 20, 2, 60, 5), "records_in": 100 * (i + 1)} for i in range(3)}
    got = split(progress, stamps)
    assert got["triggers"] == 2 and got["rows"] == 250 and got["collect"] == 2
