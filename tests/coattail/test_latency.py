"""The run's latency recorder: per-event durations by stage from the schedule, the stamps and the commits."""

from __future__ import annotations

import pyarrow as pa

from coattail.run.latency import LatencyRecorder, latency_summary
from pipeline.engine import BatchResult
from pipeline.timing import BatchTiming
from replay.clock import Schedule

T0 = 1_700_000_000_000_000


def batch(batch_id: int, ts_event: list[int], sent: list[int | None], ingest: list[int], timing: BatchTiming,
          alerts: tuple[list[int], list[int]] = ([], [])) -> BatchResult:
    events = pa.table({"ts_event": ts_event, "ts_sent": pa.array(sent, pa.int64()), "ts_ingest": ingest},
                      schema=pa.schema([pa.field("ts_event", pa.int64(), nullable=False),
                                        pa.field("ts_sent", pa.int64()), pa.field("ts_ingest", pa.int64())]))
    empty = events.slice(0, 0)
    # quarantine has no ts_sent, and its columns' nullability differs from the bronze tables'
    quarantine = pa.table({"ts_event": pa.array([None], pa.int64()), "ts_ingest": [T0]},
                          schema=pa.schema([pa.field("ts_event", pa.int64(), nullable=True),
                                            pa.field("ts_ingest", pa.int64())]))
    return BatchResult(
        batch_id, len(ts_event) + 1, len(ts_event), 1,
        tables={
            "trades": events, "quotes": empty, "quarantine": quarantine,
            "alerts": pa.table({"ts_sent": pa.array(alerts[0], pa.int64()),
                                "ts_written": pa.array(alerts[1], pa.int64())}),
        },
        timing=timing,
    )


def ms(recorder: LatencyRecorder, stage: str) -> tuple[float | None, float | None, float]:
    s = recorder.histograms[stage].summary_ms()
    return s["p50"], s["max"], s["count"] or 0.0


def test_each_event_is_measured_from_its_scheduled_time_by_stage() -> None:
    recorder = LatencyRecorder()
    # at 2x, the event 2 s of exchange time after the anchor is due 1 s after it
    timing = BatchTiming(0, started_us=T0 + 1_500_000, collected_us=T0 + 1_600_000,
                         results_us=T0 + 1_700_000, routed_us=T0 + 1_800_000)
    result = batch(0, ts_event=[100, 2_000_100], sent=[T0 + 10_000, None],
                   ingest=[T0 + 30_000, T0 + 1_200_000], timing=timing,
                   alerts=([T0 + 10_000], [T0 + 1_790_000]))
    recorder.on_commit([0], T0 + 4_700_000)  # the commit may overtake on_batch
    recorder.on_batch(result)  # and a batch may come before the replay's schedule
    assert recorder.histograms["results"].count == 0
    recorder.set_schedule(Schedule(event_us=100, wall_us=T0, speed=2.0))
    assert ms(recorder, "replay") == (10.0, 10.0, 1)  # the event without ts_sent is left out
    assert ms(recorder, "kinesis") == (20.0, 20.0, 1)
    assert recorder.histograms["wait"].max_us == 1_470_000 and recorder.histograms["wait"].count == 2
    assert ms(recorder, "trigger")[2] == 2  # the quarantined record without exchange time has no schedule
    assert recorder.histograms["results"].max_us == 1_700_000
    assert recorder.histograms["results"].min_us == 700_000
    assert recorder.histograms["freshness"].max_us == 4_700_000
    assert recorder.histograms["sinks"].max_us == 3_000_000
    assert recorder.histograms["alert"].max_us == 1_780_000
    data = recorder.to_dict()
    assert data["unmeasured_batches"] == 0 and not data["queueing"]
    summary = latency_summary(data)
    assert summary["headline"]["results p99 ms"] is not None


def test_max_speed_is_queueing_and_has_no_headline() -> None:
    recorder = LatencyRecorder()
    recorder.set_schedule(Schedule(event_us=0, wall_us=T0, speed=None))
    timing = BatchTiming(0, T0 + 10, T0 + 20, T0 + 30, T0 + 40)
    recorder.on_batch(batch(0, [5, 10**9], [T0, T0], [T0, T0], timing))
    assert recorder.histograms["results"].min_us == recorder.histograms["results"].max_us == 30
    data = recorder.to_dict()
    assert data["unmeasured_batches"] == 1  # not committed yet
    summary = latency_summary(data)
    assert summary["queueing"] and summary["headline"] == {}
    assert latency_summary(None)["measured"] is False
