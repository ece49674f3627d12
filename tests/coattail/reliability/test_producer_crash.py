"""The producer's crash suite, bounded for CI: ``coattail connect`` fed a real Binance spot capture by the
replay's WebSocket server, SIGKILLed three times mid-feed and restarted: nothing on the stream twice,
nothing foreign, every lost event inside a trade-id gap on the stream, and MOD-004's reference counting
exactly those ids as ``TRADE_ID_GAP``. The full version: ``coattail reliability crash-producer --kills N
TAPE``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from coattail.reliability.producer_crash import ProducerCrashReport, ProducerCrashSuite, compare
from core.tape import Tape
from pipeline.config import RuntimeSettings
from pipeline.testkit import quote, trade
from replay.merge import KIND_CODE
from replay.readers.importer import import_files
from replay.resume import EventKey
from replay.testkit import write_tape
from tests.conftest import REAL_TAPES

CAPTURE = REAL_TAPES / "binance-ws" / "spot_btcusdt_20240808.gz"
T0 = 1_723_161_600_000_000
TRADE, QUOTE = KIND_CODE["trade"], KIND_CODE["quote"]


def _key(code: int, native: int) -> EventKey:
    return (code, "binance", "BTCUSDT", native)


def test_compare_tells_reported_losses_from_silent_ones_and_counts_doubles(tmp_path: Path) -> None:
    trades = [trade(i, 100.0, 1.0, T0 + i * 1_000)[1] for i in range(1, 11)]
    quotes = [quote(1, 99.0, 101.0, T0 + 4_500)[1], quote(2, 99.0, 101.0, T0 + 9_500)[1]]
    write_tape(tmp_path / "t", trades, quotes)
    tape = Tape.open(tmp_path / "t")
    # on the stream: trades 1-3, 6-9 (4, 5 inside a gap), 10 missing after the last (silent);
    # quote 1 (between trades 4 and 5) inside the gap, quote 2 (after trade 9) silent; trade 2 twice;
    # quote 99 is not on the tape
    found = Counter([_key(TRADE, i) for i in (1, 2, 2, 3, 6, 7, 8, 9)] + [_key(QUOTE, 99)])
    report = ProducerCrashReport(events=12)
    compare(report, [tape], found)
    assert (report.lost_reported, report.lost_unreported, report.duplicated, report.foreign) == (3, 2, 1, 1)
    assert (report.gaps, report.missing_trade_ids) == (1, 2) and not report.ok


@pytest.mark.integration
@pytest.mark.e2e
def test_producer_kills_double_nothing_and_report_every_loss(aws_endpoint: str, tmp_path: Path) -> None:
    import_files([CAPTURE], tmp_path / "tape", skip_bad=True)
    suite = ProducerCrashSuite(
        tapes=(tmp_path / "tape",),
        runtime=RuntimeSettings(aws_endpoint=aws_endpoint, state_dir=tmp_path / "state"),
        workdir=tmp_path / "work",
        kills=3,
        seed=1,
        speed=20.0,
    )
    report = suite.run()
    assert len(report.kills_at_s) == 3 and report.starts == 4, report.as_dict()
    assert report.lost_reported > 0 and report.gaps >= 3, report.as_dict()  # the kills did land mid-feed
    assert report.mod004_trade_id_gap == report.missing_trade_ids >= report.gaps, report.as_dict()
    assert report.ok, report.as_dict()
