"""The production producer behind the replay's WebSocket server, into Kinesis on the emulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError, ProducerError
from core.events import EVENT_KINDS
from core.tape import Tape
from pipeline.config import RuntimeSettings
from pipeline.producer.settings import load_producer_settings
from pipeline.testkit import trade
from replay.faults import DisconnectFault, FaultSpec, RateFault
from replay.readers.importer import import_files
from replay.testkit import write_tape
from replay.via_ws import replay_through_producer, subscriptions_of
from tests.conftest import REAL_TAPES
from tests.replay.test_kinesis import _read_back, _stream

pytestmark = pytest.mark.integration
TapeFactory = Callable[[Path, int], Path]
COINBASE_CAPTURE = REAL_TAPES / "coinbase-ws" / "COINBASE.ws.28.0"


def _tapes(tardis_tape: TapeFactory, root: Path, rows: int) -> list[Path]:
    """Real Binance USD-M trades and quotes (Tardis) and the real Coinbase capture."""
    import_files([COINBASE_CAPTURE], root / "coinbase", skip_bad=True)
    return [tardis_tape(root / "futures", rows), root / "coinbase"]


def _tape_rows(tapes: list[Path]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in tapes:
        tape = Tape.open(path)
        rows += [{"type": k, **r} for k in EVENT_KINDS for r in tape.read(k).to_pylist()]
    return rows


def _identity(row: dict[str, Any]) -> str:
    """An event without its transport stamps (the producer stamps its own receive and send times)."""
    kept = {k: v for k, v in row.items() if k not in ("v", "ts_recv", "ts_sent", "seq")}
    return json.dumps(kept, sort_keys=True)


def _settings() -> Any:
    settings = load_producer_settings()
    return settings.model_copy(
        update={"reconnect": settings.reconnect.model_copy(update={"base_ms": 5.0, "max_ms": 50.0})}
    )


def test_every_event_reaches_the_stream_once_in_key_order(
    tardis_tape: TapeFactory, aws_endpoint: str, tmp_path: Path
) -> None:
    tapes = _tapes(tardis_tape, tmp_path, rows=300)
    stream = _stream(aws_endpoint, "producer-readback")
    summary, report = replay_through_producer(
        tapes, _settings(), RuntimeSettings(aws_endpoint=aws_endpoint), stream, batch_rows=64
    )
    shards = _read_back(aws_endpoint, stream)
    got = [row for rows in shards.values() for _, row in rows]
    expected = _tape_rows(tapes)
    assert summary.sent == len(expected) == report.stats.events_out == len(got)
    assert sorted(map(_identity, got)) == sorted(map(_identity, expected))
    for rows in shards.values():  # per key, the exchange's order: trade ids ascending
        for key in {k for k, _ in rows}:
            ids = [r["trade_id"] for k, r in rows if k == key and r["type"] == "trade"]
            assert ids == sorted(ids)
    assert all(r["ts_sent"] >= r["ts_recv"] for r in got)
    assert report.send_to_put_us.size == len(got) and (report.send_to_put_us > 0).all()
    assert report.stats.bad_messages == 0 and report.stats.gaps == 0


def test_disconnects_and_dropped_trades_report_the_gaps_and_duplicate_nothing(
    tardis_tape: TapeFactory, aws_endpoint: str, tmp_path: Path
) -> None:
    """The replay drops every connection every 150 events (the connectors reconnect and resubscribe; the
    Coinbase feed repeats its last match) and never sends 3% of the trades: each hole in the trade ids
    is reported once, and no event is on the stream twice."""
    tapes = _tapes(tardis_tape, tmp_path, rows=400)
    stream = _stream(aws_endpoint, "producer-gaps")
    faults = FaultSpec(
        disconnect=DisconnectFault(every=150, pause_ms=20), drops=RateFault(rate=0.03), kinds=["trade"]
    )
    summary, report = replay_through_producer(
        tapes, _settings(), RuntimeSettings(aws_endpoint=aws_endpoint), stream, faults=faults, seed=3,
        batch_rows=64,
    )  # fmt: skip
    got = [row for rows in _read_back(aws_endpoint, stream).values() for _, row in rows]
    identities = [_identity(r) for r in got]
    assert len(identities) == len(set(identities)) == summary.sent
    assert report.stats.reconnects >= sum(1 for lb in summary.labels if lb.kind == "disconnect") >= 3
    # the holes the stream shows, per key, are the holes the producer reported
    inherent = _holes(_tape_rows(tapes))  # a recorded feed has holes of its own
    holes = _holes(got) - inherent
    dropped = sum(1 for lb in summary.labels if lb.kind == "drop")
    assert 0 < holes <= dropped
    assert report.stats.missing_trades == holes + inherent
    assert report.stats.gaps == len(report.gaps) > 0


def _holes(rows: list[dict[str, Any]]) -> int:
    """Trade ids missing between the lowest and highest of each key."""
    ids: dict[str, list[int]] = {}
    for r in rows:
        if r["type"] == "trade":
            ids.setdefault(f"{r['exchange']}:{r['symbol']}", []).append(r["trade_id"])
    return sum(max(v) - min(v) + 1 - len(set(v)) for v in ids.values())


def test_a_tape_of_an_exchange_without_connector_is_refused(tmp_path: Path) -> None:
    write_tape(tmp_path / "t", [trade(1, 1.0, 1.0, 1_700_000_000_000_000, exchange="kraken")[1]], [])
    with pytest.raises(ConfigError, match=r"kraken.*--via kinesis"):
        subscriptions_of([tmp_path / "t"])


def test_a_missing_stream_is_the_producers_clear_error(
    tardis_tape: TapeFactory, aws_endpoint: str, tmp_path: Path
) -> None:
    tape = tardis_tape(tmp_path / "tape", 20)
    runtime = RuntimeSettings(aws_endpoint=aws_endpoint)
    with pytest.raises(ProducerError, match="does not exist"):
        replay_through_producer([tape], _settings(), runtime, "no-such-stream")
