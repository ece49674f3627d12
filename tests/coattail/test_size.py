"""``coattail size`` on a real Binance capture: per-shard peaks counted independently from the tape,
aggregation, speed, the alerts' write rate, and the command's table."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from coattail.cli import app
from coattail.size import SHARD_IN_RECORDS, SizeReport, item_bytes, measure, shard_of
from core.events import partition_key, to_wire
from core.tape import Tape
from pipeline.config import Config, ConfigLoader
from replay.readers.importer import import_files
from tests.conftest import REAL_TAPES

CAPTURE = REAL_TAPES / "binance-ws" / "spot_btcusdt_20240808.gz"
WHALE = {"settings.MOD-001.thresholds_usd": {"BTCUSDT": 50_000}}


@pytest.fixture(scope="module")
def tape(tmp_path_factory: pytest.TempPathFactory) -> Tape:
    out = tmp_path_factory.mktemp("size") / "binance"
    import_files([CAPTURE], out)
    return Tape.open(out)


@pytest.fixture(scope="module")
def whale_config() -> Config:
    return ConfigLoader().load("small", env={}, overrides=WHALE)


@pytest.fixture(scope="module")
def report(tape: Tape, whale_config: Config) -> SizeReport:
    return measure(tape, whale_config)


def _events(tape: Tape) -> list[tuple[int, str, int]]:
    """``(ts_event, partition key, wire bytes + key bytes)`` of every event, by the wire's definition."""
    out = []
    for kind in ("trade", "quote"):
        for row in tape.read(kind).to_pylist():
            key = partition_key(row["exchange"], row["symbol"])
            size = len(to_wire(kind, row, ts_sent=row["ts_event"])) + len(key)
            out.append((row["ts_event"], key, size))
    return out


def test_peaks_per_shard_are_the_tapes(tape: Tape, report: SizeReport, whale_config: Config) -> None:
    events = _events(tape)
    shards = whale_config.kinesis.shards
    records = Counter((ts // 1_000_000, shard_of(key, shards)) for ts, key, _ in events)
    sizes: Counter[tuple[int, int]] = Counter()
    for ts, key, size in events:
        sizes[(ts // 1_000_000, shard_of(key, shards))] += size
    assert report.events == len(events) == sum(tape.manifest.rows.values())
    (second, shard), top = records.most_common(1)[0]
    assert report.plain.records.value == top
    assert (report.plain.records.second, report.plain.records.shard) == (second, shard)
    # the replay's vectorised encoder may print a float differently (1e-05 for 0.00001)
    assert report.plain.bytes.value == pytest.approx(max(sizes.values()), rel=0.01)


def test_aggregation_packs_each_keys_flush_window(
    tape: Tape, report: SizeReport, whale_config: Config
) -> None:
    shards = whale_config.kinesis.shards
    windows = {(ts // 100_000, key) for ts, key, _ in _events(tape)}
    per = Counter((w * 100_000 // 1_000_000, shard_of(key, shards)) for w, key in windows)
    assert report.aggregated.records.value == max(per.values())
    assert report.aggregated.bytes.value <= report.plain.bytes.value


def test_the_busiest_second_is_over_a_shard_without_aggregation(report: SizeReport) -> None:
    """The capture's one key passes 1,000 records/s in its busiest second: no shard count helps
    (a key lives on one shard), aggregation does."""
    assert report.plain.records.value > SHARD_IN_RECORDS
    assert not report.fits(report.plain)
    assert report.fits(report.aggregated)
    assert report.min_shards_plain is None
    assert report.min_shards_aggregated == 1


def test_rates_scale_with_the_speed(tape: Tape, report: SizeReport, whale_config: Config) -> None:
    faster = measure(tape, whale_config, speed=2.0, consumers=3)
    assert faster.plain.records.value == 2 * report.plain.records.value
    assert faster.aggregated.bytes.value == 2 * report.aggregated.bytes.value
    assert faster.alerts_peak.value == 2 * report.alerts_peak.value
    assert faster.plain.reads == 3 * report.plain.reads


def test_alert_writes_come_from_the_reference_alerts(
    tape: Tape, report: SizeReport, whale_config: Config
) -> None:
    from coattail.reference import from_tape, run_reference

    alerts = run_reference(from_tape(tape), whale_config).alerts
    assert report.alerts == alerts.num_rows > 0
    busiest = Counter(ts // 1_000_000 for ts in alerts.column("ts_event").to_pylist()).most_common(1)[0][1]
    assert report.alerts_peak.value == busiest
    assert report.alert_item_bytes > 200
    assert report.wcu_per_alert == 4 * math.ceil(report.alert_item_bytes / 1024)
    assert report.alert_wcu == busiest * report.wcu_per_alert


def test_item_bytes_follow_dynamodbs_rules() -> None:
    assert item_bytes({"sym": {"S": "BTCUSDT"}}) == 3 + 7
    assert item_bytes({"n": {"N": "123456"}}) == 1 + 4
    assert item_bytes({"n": {"N": "100"}}) == 1 + 2
    assert item_bytes({"ids": {"L": [{"S": "ab"}, {"S": "c"}]}}) == 3 + 3 + (2 + 1) + (1 + 1)


@given(key=st.text(min_size=1, max_size=40), shards=st.integers(1, 64))
def test_every_key_lands_on_one_of_the_shards(key: str, shards: int) -> None:
    shard = shard_of(key, shards)
    assert 0 <= shard < shards
    assert shard_of(key, 1) == 0
    assert shard_of(key, 2 * shards) // 2 == shard  # halving each range keeps a key in its half


def test_the_command_prints_the_tables_and_the_verdict(tape: Tape) -> None:
    result = CliRunner().invoke(app, ["size", str(tape.path), "--tier", "medium"], terminal_width=200)
    assert result.exit_code == 0, result.output
    words = set(result.output.split())  # the table wraps to the terminal's width
    assert {"records", "bytes", "GetRecords", "OVER", "fits", "aggregated", "DynamoDB", "verdict:"} <= words
    verdict = "tier medium at speed 1 holds this tape with KPL aggregation only"
    assert verdict in " ".join(result.output.split())


def test_a_missing_tape_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["size", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
