"""The reference detectors against cases computed by hand from docs/DETECTORS.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from coattail.reference import from_tape, from_wire, run_reference
from coattail.run.outputs import RECORD_REASONS, RunOutputs
from core.events import to_wire
from pipeline.alerts import alert_id
from pipeline.config import Config
from tests.coattail.coattail_tapekit import US, at, make_tape


def alerts(result: RunOutputs, detector: str | None = None) -> list[dict[str, Any]]:
    rows = result.alerts.to_pylist()
    return [r for r in rows if detector is None or r["detector"] == detector]


def dq(result: RunOutputs) -> dict[tuple[str, int], int]:
    return {
        (r["reason"], (r["window_start"] - at(0)) // US): r["count"]
        for r in result.dq.iter_rows(named=True)
        if r["reason"] not in RECORD_REASONS
    }


def trade_wire(
    t: float, tid: int, price: float, qty: float, symbol: str = "BTCUSDT", side: str = "buy"
) -> bytes:
    row = {
        "exchange": "binance",
        "symbol": symbol,
        "trade_id": tid,
        "price": price,
        "qty": qty,
        "side": side,
        "ts_event": at(t),
        "ts_recv": None,
    }
    return to_wire("trade", row, ts_sent=1)


# --- MOD-001 -----------------------------------------------------------------------------------------


def test_whale_threshold_edges_and_severity(tmp_path: Path, config: Config) -> None:
    tape = make_tape(
        tmp_path / "t",
        trades=[
            (1, "BTCUSDT", 1, 50_000.0, 19.99, "buy"),  # 999,500: below
            (2, "BTCUSDT", 2, 50_000.0, 20.0, "sell"),  # exactly 1,000,000: fires, low
            (3, "BTCUSDT", 3, 50_000.0, 100.0, "buy"),  # 5,000,000 = 5x: high
            (4, "BTCUSDT", 4, 50_000.0, 200.0, "buy"),  # 10x: critical
            (5, "ETHUSDT", 9, 2_500.0, 400.0, "buy"),  # 1,000,000 on a 500k threshold: medium (2x)
            (6, "BTCEUR", 1, 50_000.0, 1_000.0, "buy"),  # EUR has no USD rate: ignored
            (7, "DOGEUSDT", 1, 0.5, 2_000_000.0, "buy"),  # default threshold 1M: fires, low
        ],
    )
    got = {
        (a["symbol"], json.loads(a["evidence"])["trade_id"]): a
        for a in alerts(run_reference(from_tape(tape), config))
    }
    assert set(got) == {("BTCUSDT", 2), ("BTCUSDT", 3), ("BTCUSDT", 4), ("ETHUSDT", 9), ("DOGEUSDT", 1)}
    assert [got[("BTCUSDT", i)]["severity"] for i in (2, 3, 4)] == ["low", "high", "critical"]
    assert got[("ETHUSDT", 9)]["severity"] == "medium"
    edge = got[("BTCUSDT", 2)]
    assert edge["alert_id"] == alert_id("MOD-001", "binance", "BTCUSDT", 2)
    assert edge["kind"] == "whale_trade"
    assert edge["value"] == 1_000_000.0
    assert edge["threshold"] == 1_000_000.0
    assert edge["ts_event"] == at(2)
    assert edge["window_start"] is None
    assert edge["event_ids"] == ["trade:binance:BTCUSDT:2"]
    assert json.loads(edge["evidence"]) == {
        "price": 50_000.0,
        "qty": 20.0,
        "side": "sell",
        "notional_usd": 1_000_000.0,
        "quote_currency": "USDT",
        "trade_id": 2,
        "multiple": 1.0,
    }


def test_whale_coinbase_quote_currency_after_dash(tmp_path: Path, config: Config) -> None:
    tape = make_tape(
        tmp_path / "t",
        exchange="coinbase",
        trades=[(1, "BTC-USD", 10, 60_000.0, 20.0, "buy"), (2, "ETH-EUR", 11, 3_000.0, 1_000.0, "buy")],
    )
    got = alerts(run_reference(from_tape(tape), config))
    assert [(a["symbol"], json.loads(a["evidence"])["quote_currency"]) for a in got] == [("BTC-USD", "USD")]


def test_whale_duplicate_fires_once_and_late_trade_still_fires(config: Config) -> None:
    records = [
        trade_wire(0, 1, 100.0, 1.0),
        trade_wire(1, 2, 50_000.0, 30.0),
        trade_wire(1, 2, 50_000.0, 30.0),  # duplicate of trade 2
        trade_wire(30, 3, 100.0, 1.0),
        trade_wire(5, 4, 50_000.0, 40.0),  # 25 s behind the max: late, still a whale
    ]
    result = run_reference(from_wire(records), config)
    ids = sorted(json.loads(a["evidence"])["trade_id"] for a in alerts(result, "MOD-001"))
    assert ids == [2, 4]
    counts = dq(result)
    assert counts[("DUPLICATE_ID", 0)] == 1
    assert counts[("LATE_EVENT", 0)] == 1


# --- MOD-002 -----------------------------------------------------------------------------------------


def volume_tape(tmp_path: Path, history: list[float], spike: float) -> Any:
    """One ETHUSDT trade per minute with the given notionals (price 1000), then the spike window, then
    one trade 10 s past the spike window's end so that it closes."""
    trades = [(60 * i + 1, "ETHUSDT", i + 1, 1_000.0, v / 1_000.0, "buy") for i, v in enumerate(history)]
    n = len(history)
    trades.append((60 * n + 5, "ETHUSDT", n + 1, 1_000.0, spike / 1_000.0, "buy"))
    trades.append((60 * (n + 1) + 10, "ETHUSDT", n + 2, 1_000.0, 0.001, "buy"))
    return make_tape(tmp_path / "v", trades=trades)


def test_volume_spike_z_exactly_twice_threshold_is_high(tmp_path: Path, config: Config) -> None:
    # History 5 x 10k and 5 x 30k: mean 20k, std 10k. Spike 100k: z = 8 = 2 x 4 -> high.
    tape = volume_tape(tmp_path, [10_000.0, 30_000.0] * 5, 100_000.0)
    got = alerts(run_reference(from_tape(tape), config), "MOD-002")
    assert len(got) == 1
    a = got[0]
    start = at(600)
    assert a["alert_id"] == alert_id("MOD-002", "binance", "ETHUSDT", start)
    assert (a["window_start"], a["window_end"], a["ts_event"]) == (start, start + 60 * US, start + 60 * US)
    assert a["value"] == pytest.approx(8.0)
    assert a["severity"] == "high"
    assert a["threshold"] == 4.0
    evidence = json.loads(a["evidence"])
    assert evidence["mean"] == pytest.approx(20_000.0)
    assert evidence["std"] == pytest.approx(10_000.0)
    assert evidence["history"] == 10
    assert evidence["trades"] == 1
    assert a["event_ids"] == ["trade:binance:ETHUSDT:11"]


def test_volume_needs_min_history_and_counts_empty_windows(tmp_path: Path, config: Config) -> None:
    # Only 9 previous windows: no alert, however large the spike.
    tape = volume_tape(tmp_path, [10_000.0] * 9, 10_000_000.0)
    assert alerts(run_reference(from_tape(tape), config), "MOD-002") == []


def test_volume_empty_windows_count_as_zero(tmp_path: Path, config: Config) -> None:
    # Trades in minutes 0 and 11 only; minutes 1..10 are empty (0). Baseline of minute 11:
    # [20k, 0 x 10] -> mean 1818.18, std 5749.6; v = 200k -> z = 34.47 -> critical.
    trades = [
        (1, "ETHUSDT", 1, 1_000.0, 20.0, "buy"),
        (661, "ETHUSDT", 2, 1_000.0, 200.0, "buy"),
        (730, "ETHUSDT", 3, 1_000.0, 0.001, "buy"),
    ]
    got = alerts(run_reference(from_tape(make_tape(tmp_path / "e", trades=trades)), config), "MOD-002")
    assert len(got) == 1
    history = [20_000.0] + [0.0] * 10
    mean = sum(history) / 11
    std = (sum((h - mean) ** 2 for h in history) / 11) ** 0.5
    assert got[0]["value"] == pytest.approx((200_000.0 - mean) / std)
    assert got[0]["severity"] == "critical"


def test_volume_window_not_closed_is_not_evaluated(tmp_path: Path, config: Config) -> None:
    trades = [(60 * i + 1, "ETHUSDT", i + 1, 1_000.0, 10.0, "buy") for i in range(10)]
    trades.append((605, "ETHUSDT", 11, 1_000.0, 1_000.0, "buy"))
    trades.append((669, "ETHUSDT", 12, 1_000.0, 0.001, "buy"))  # 669 - 10 = 659 < 660: still open
    got = alerts(run_reference(from_tape(make_tape(tmp_path / "o", trades=trades)), config), "MOD-002")
    assert got == []


def test_volume_late_and_duplicate_trades_are_left_out(config: Config) -> None:
    records = [trade_wire(60 * i + 1, i + 1, 1_000.0, 10.0, symbol="ETHUSDT") for i in range(10)]
    records.append(trade_wire(605, 11, 1_000.0, 200.0, symbol="ETHUSDT"))  # 200k
    records.append(trade_wire(605, 11, 1_000.0, 200.0, symbol="ETHUSDT"))  # duplicate: counted once
    records.append(trade_wire(675, 12, 1_000.0, 0.001, symbol="ETHUSDT"))
    records.append(trade_wire(610, 13, 1_000.0, 500.0, symbol="ETHUSDT"))  # late (665 > 610): left out
    got = alerts(run_reference(from_wire(records), config), "MOD-002")
    assert len(got) == 1
    evidence = json.loads(got[0]["evidence"])
    assert evidence["notional_usd"] == pytest.approx(200_000.0)
    assert evidence["trades"] == 1


# --- MOD-003 -----------------------------------------------------------------------------------------


def spread_quotes() -> list[tuple[float, str, float, float, int]]:
    quotes: list[tuple[float, str, float, float, int]]
    quotes = [(60 * i + 1, "BTCUSDT", 99.995, 100.005, i) for i in range(5)]  # 1 bps each
    quotes.append((301, "BTCUSDT", 99.98, 100.02, 10))  # 4 bps > 3 x median 1
    quotes.append((361, "BTCUSDT", 99.0, 101.0, 11))  # 200 bps > 100 cap and > 3 x median
    quotes.append((421, "BTCUSDT", 101.0, 100.0, 12))  # crossed
    quotes.append((422, "BTCUSDT", 100.0, 100.0, 13))  # locked
    quotes.append((423, "BTCUSDT", 101.5, 100.0, 14))  # crossed
    quotes.append((490, "BTCUSDT", 99.995, 100.005, 15))  # closes minute 7
    return quotes


def test_spread_metrics_and_alerts(tmp_path: Path, config: Config) -> None:
    result = run_reference(from_tape(make_tape(tmp_path / "s", quotes=spread_quotes())), config)
    metrics = result.spread_metrics
    assert metrics.height == 7  # minutes 0..6; minute 7 has no spread, minute 8 is open
    first = metrics.row(0, named=True)
    assert first["count"] == 1
    assert first["mean_bps"] == pytest.approx(1.0, rel=1e-9)
    got = {(a["kind"], (a["window_start"] - at(0)) // US): a for a in alerts(result, "MOD-003")}
    assert set(got) == {("spread_blowout", 300), ("spread_blowout", 360), ("crossed_book", 420)}
    medium = got[("spread_blowout", 300)]
    assert medium["value"] == pytest.approx(0.04 / 100.0 * 1e4)
    assert medium["threshold"] == pytest.approx(3.0)
    assert medium["severity"] == "medium"
    assert medium["alert_id"] == alert_id("MOD-003", "binance", "BTCUSDT", f"spread:{at(300)}")
    high = got[("spread_blowout", 360)]
    # Both bounds crossed: the lower one (3 x median of [1,1,1,1,1,4] = 3) is the threshold.
    assert high["threshold"] == pytest.approx(3.0)
    assert high["severity"] == "high"
    crossed = got[("crossed_book", 420)]
    assert crossed["value"] == 2.0
    assert crossed["threshold"] == 0.0
    assert crossed["severity"] == "high"
    assert crossed["ts_event"] == at(480)
    assert crossed["event_ids"] == ["quote:binance:BTCUSDT:12", "quote:binance:BTCUSDT:14"]
    assert crossed["alert_id"] == alert_id("MOD-003", "binance", "BTCUSDT", f"crossed:{at(420)}")
    counts = dq(result)
    assert counts[("CROSSED_BOOK", 420)] == 2
    assert counts[("LOCKED_BOOK", 420)] == 1


def test_spread_cap_alone_before_min_history(tmp_path: Path, config: Config) -> None:
    quotes = [
        (1, "BTCUSDT", 99.0, 101.0, 1),
        (61, "BTCUSDT", 99.0, 101.0, 2),
        (130, "BTCUSDT", 99.0, 101.0, 3),
    ]
    got = alerts(run_reference(from_tape(make_tape(tmp_path / "c", quotes=quotes)), config), "MOD-003")
    assert [a["threshold"] for a in got] == [100.0, 100.0]
    assert [a["severity"] for a in got] == ["medium", "medium"]  # 200 bps is not above 2 x 100


# --- MOD-004 -----------------------------------------------------------------------------------------


def test_dq_stream_rules(tmp_path: Path, config: Config) -> None:
    tape = make_tape(
        tmp_path / "d",
        trades=[
            (0, "SOLUSDT", 1, 100.0, 1.0, "buy"),
            (1, "SOLUSDT", 2, 100.0, 1.0, "buy"),
            (2, "SOLUSDT", 5, 130.0, 1.0, "buy"),  # ids 3, 4 missing; 30 % above 100
            (3, "SOLUSDT", 6, 120.0, 1.0, "buy"),  # 7.7 % below 130: inside the band
            (40, "SOLUSDT", 7, 120.0, 1.0, "sell"),  # 37 s after the previous trade: stale
            (62, "SOLUSDT", 8, 120.0, 1.0, "sell"),
        ],
    )
    assert dq(run_reference(from_tape(tape), config)) == {
        ("TRADE_ID_GAP", 0): 2,
        ("PRICE_BAND", 0): 1,
        ("STALE_FEED", 0): 1,
    }


def test_quarantine_reasons_in_documented_order(config: Config) -> None:
    good = json.loads(trade_wire(1, 1, 100.0, 1.0))

    def variant(**changes: Any) -> bytes:
        obj = {**good, **changes}
        return json.dumps({k: v for k, v in obj.items() if v != "<drop>"}).encode()

    records = [
        b"not json",
        b"[1, 2]",
        variant(v=2),
        variant(v=True),
        variant(type="order"),
        variant(price="<drop>"),
        variant(qty=None),
        variant(price="100.0"),
        variant(trade_id=1.5),
        variant(price=0.0, qty=-1.0),  # price is checked first
        variant(qty=0.0),
        variant(price=float("inf")),
        variant(side="BUY"),
        variant(ts_recv=None),  # ts_recv may be null: valid
    ]
    result = run_reference(from_wire(records), config)
    quarantined = result.dq.filter(pl.col("reason").is_in(list(RECORD_REASONS)))
    got = {(r["reason"], r["symbol"]): r["count"] for r in quarantined.iter_rows(named=True)}
    assert got == {
        ("PARSE_ERROR", ""): 2,
        ("SCHEMA_VERSION", "BTCUSDT"): 2,
        ("UNKNOWN_TYPE", "BTCUSDT"): 1,
        ("MISSING_FIELD", "BTCUSDT"): 2,
        ("BAD_TYPE", "BTCUSDT"): 2,
        ("NON_POSITIVE_PRICE", "BTCUSDT"): 2,
        ("NON_POSITIVE_SIZE", "BTCUSDT"): 1,
        ("BAD_SIDE", "BTCUSDT"): 1,
    }
    assert result.records_in == len(records)
    assert result.valid == 1
    assert result.records_in == result.valid + sum(got.values())


def test_tape_input_is_tape_order(tmp_path: Path) -> None:
    tape = make_tape(
        tmp_path / "o",
        trades=[(2, "BTCUSDT", 2, 1.0, 1.0, "buy"), (1, "BTCUSDT", 1, 1.0, 1.0, "buy")],
        quotes=[(1, "BTCUSDT", 1.0, 2.0, 1)],
    )
    frame = from_tape(tape)
    assert frame.get_column("ts_event").to_list() == [at(1), at(1), at(2)]
    assert frame.get_column("kind").to_list() == ["trade", "quote", "trade"]
    assert frame.get_column("arrival").to_list() == [0, 1, 2]
    assert frame.get_column("reason").null_count() == 3
    assert isinstance(frame, pl.DataFrame)


def test_only_unknown_quote_currencies(tmp_path: Path, config: Config) -> None:
    tape = make_tape(tmp_path / "u", trades=[(1, "BTCEUR", 1, 50_000.0, 1_000.0, "buy")])
    result = run_reference(from_tape(tape), config)
    assert result.alerts.num_rows == 0
    assert result.valid == 1


def test_late_event_also_counts_other_rules_but_not_stale(config: Config) -> None:
    records = [
        trade_wire(0, 1, 100.0, 1.0),
        trade_wire(40, 2, 100.0, 1.0),  # 40 s gap: stale
        trade_wire(5, 9, 200.0, 1.0),  # late (40 - 10 > 5), ids 3..8 missing, 100 % above 100
        trade_wire(50, 10, 100.0, 1.0),  # 50 % below 200: price band again; no gap, no stale (10 s)
    ]
    assert dq(run_reference(from_wire(records), config)) == {
        ("STALE_FEED", 0): 1,
        ("LATE_EVENT", 0): 1,
        ("TRADE_ID_GAP", 0): 6,
        ("PRICE_BAND", 0): 2,
    }


def test_quarantine_window_from_integer_ts_event(config: Config) -> None:
    good = json.loads(trade_wire(61, 1, 100.0, 1.0))
    records = [
        json.dumps({**good, "price": -1.0}).encode(),
        json.dumps({**good, "v": 2, "ts_event": "x"}).encode(),
        b"\xff\xfe{}",
    ]
    rows = run_reference(from_wire(records), config).dq.sort("reason").rows()
    assert rows == [
        ("binance", "BTCUSDT", at(60), "NON_POSITIVE_PRICE", 1),
        ("", "", None, "PARSE_ERROR", 1),
        ("binance", "BTCUSDT", None, "SCHEMA_VERSION", 1),
    ]
