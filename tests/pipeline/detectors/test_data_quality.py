"""MOD-004 stream rules and quarantine counts against hand-computed expectations."""

from __future__ import annotations

from pipeline.testkit import MIN, T0, Item, dq_sums, quote, run_engine, small_config, trade

W0, W1, W2 = T0, T0 + MIN, T0 + 2 * MIN
SEC = 1_000_000


def test_every_stream_reason_counted_in_the_window_of_the_event() -> None:
    cfg = small_config()  # watermark 10 s, stale feed 30 s, price band 20 %
    items = [
        trade(1, 100.0, 1.0, T0 + 1 * SEC),
        trade(2, 120.0, 1.0, T0 + 2 * SEC),  # +20 %: exactly at the band, not counted
        trade(3, 144.1, 1.0, T0 + 3 * SEC),  # +20.08 %: PRICE_BAND
        trade(3, 144.1, 1.0, T0 + 4 * SEC),  # DUPLICATE_ID
        trade(7, 144.1, 1.0, T0 + 5 * SEC),  # TRADE_ID_GAP of 3 (4, 5, 6)
        trade(8, 144.1, 1.0, T0 + 35 * SEC),  # 30 s after the previous trade: STALE_FEED
        trade(9, 144.1, 1.0, T0 + 24 * SEC),  # 11 s behind the max 35 s: LATE_EVENT
        trade(10, 144.1, 1.0, T0 + 25 * SEC),  # exactly at the watermark (35 - 10): not late
        quote(1, 99.0, 100.0, T0 + 61 * SEC),
        quote(2, 100.0, 100.0, T0 + 62 * SEC),  # LOCKED_BOOK
        quote(3, 101.0, 100.0, T0 + 63 * SEC),  # CROSSED_BOOK
        quote(4, 99.0, 100.0, T0 + 50 * SEC),  # 13 s behind 63 s: LATE_EVENT (quote)
        quote(5, 99.0, 100.0, T0 + 92 * SEC),  # 29 s after 63 s: no stale; 92 s -> window W1
        quote(6, 99.0, 100.0, T0 + 122 * SEC),  # exactly 30 s after: STALE_FEED in W2
    ]
    got = dq_sums(run_engine(cfg, items))
    k = ("binance", "BTCUSDT")
    assert got == {
        (*k, W0, "PRICE_BAND"): 1,
        (*k, W0, "DUPLICATE_ID"): 1,
        (*k, W0, "TRADE_ID_GAP"): 3,
        (*k, W0, "STALE_FEED"): 1,
        (*k, W0, "LATE_EVENT"): 2,
        (*k, W1, "LOCKED_BOOK"): 1,
        (*k, W1, "CROSSED_BOOK"): 1,
        (*k, W2, "STALE_FEED"): 1,
    }


def test_trade_non_late_order_for_stale_and_band_after_late_event() -> None:
    cfg = small_config()
    items = [
        trade(1, 100.0, 1.0, T0 + 50 * SEC),
        trade(2, 50.0, 1.0, T0),  # late (50 s behind); price -50 %: PRICE_BAND
        trade(3, 100.0, 1.0, T0 + 79 * SEC),  # 29 s after the last non-late trade; +100 %: PRICE_BAND
    ]
    got = dq_sums(run_engine(cfg, items))
    k = ("binance", "BTCUSDT")
    assert got == {(*k, W0, "LATE_EVENT"): 1, (*k, W0, "PRICE_BAND"): 1, (*k, W1, "PRICE_BAND"): 1}


def test_keys_are_independent() -> None:
    cfg = small_config()
    items = [
        trade(1, 100.0, 1.0, T0),
        trade(5, 100.0, 1.0, T0 + 1, symbol="ETHUSDT"),
        trade(2, 100.0, 1.0, T0 + 2),
    ]
    assert dq_sums(run_engine(cfg, items)) == {}


def test_quarantine_counted_per_reason_with_identity_when_readable() -> None:
    cfg = small_config()
    items: list[Item] = [
        b"garbage",
        b'{"v":1,"type":"trade","exchange":"binance","symbol":"BTCUSDT","ts_event":%d}' % (T0 + MIN),
        b'{"v":3}',
        trade(1, 100.0, 1.0, T0),
    ]
    results = run_engine(cfg, items)
    assert (results[0].records_in, results[0].valid, results[0].quarantined) == (4, 1, 3)
    assert dq_sums(results) == {
        ("", "", None, "PARSE_ERROR"): 1,
        ("binance", "BTCUSDT", W1, "MISSING_FIELD"): 1,
        ("", "", None, "SCHEMA_VERSION"): 1,
    }
    rows = results[0].tables["quarantine"].to_pylist()
    assert [r["reason"] for r in rows] == ["PARSE_ERROR", "MISSING_FIELD", "SCHEMA_VERSION"]
    assert rows[0]["raw"] == "garbage"
