"""MOD-009 momentum-burst: the move against the price as of ``t - lookback``, the span's notional, edges
exactly at each bound, out-of-order arrivals, the open/close rule, bursts spanning micro-batches and
restarts (the split, interleaving and reference property of both modules is in test_whale_impact)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.alerts import alert_id
from pipeline.config import Config
from pipeline.testkit import Item, run_engine
from pipeline.testkit import trade as wire_trade
from tests.pipeline.detectors.market_kit import market_config
from tests.pipeline.detectors.windowed_kit import SEC, alerts_of, run

T = 1_700_000_100_000_000
BPS = 78.125
"""1 / 128 in bps: a move from 128 to 129 is exactly this, with no rounding."""


def fill(ts: int, tid: int, price: float, usd: float = 100.0, side: str = "buy") -> Item:
    return wire_trade(tid, price, usd / price, ts, side=side)


def bursts(
    config: Config, rows: list[Item], batch: int | None = None, **momentum: Any
) -> list[dict[str, Any]]:
    cfg = market_config(config, momentum={"threshold_bps": BPS, **momentum})
    return alerts_of(run(cfg, ["MOD-009"], rows, batch), "MOD-009")


def test_a_burst_fires_exactly_at_both_bounds_against_the_price_as_of_t_minus_lookback(
    config: Config,
) -> None:
    # p_ref: the trade exactly at t - 5 s (128); N: (t - 5 s, t], so that trade is out, 3 x 128 + 129 in
    rows = [
        fill(T - 9 * SEC, 1, 127.9),
        fill(T - 5 * SEC, 2, 128.0, 999.0),
        *[fill(T - (4 - i) * SEC, 3 + i, 128.0, 128.0) for i in range(3)],
        fill(T, 9, 129.0, 129.0),
    ]
    (alert,) = bursts(config, rows, min_notional_usd=513.0)
    assert alert["alert_id"] == alert_id("MOD-009", "binance", "BTCUSDT", 9)
    assert (alert["kind"], alert["value"], alert["threshold"], alert["severity"]) == (
        "momentum_burst",
        BPS,
        BPS,
        "low",
    )
    assert alert["evidence"] == {
        "p_ref": 128.0,
        "price": 129.0,
        "notional_usd": 513.0,
        "trades": 4,
        "direction": "up",
    }
    assert alert["event_ids"] == ["trade:binance:BTCUSDT:9"] and alert["ts_event"] == T
    # a cent of notional short, or a hair of move short: nothing
    assert bursts(config, rows, min_notional_usd=513.01) == []
    assert bursts(config, rows, min_notional_usd=513.0, threshold_bps=BPS + 1e-9) == []


def test_no_reference_price_at_the_start_and_severity_and_direction_follow_the_move(config: Config) -> None:
    rows = [fill(T, 1, 128.0, 1_000.0), fill(T + 4 * SEC, 2, 96.0, 1_000.0), fill(T + 6 * SEC, 3, 96.0)]
    (alert,) = bursts(config, rows)  # the first two have no price 5 s earlier
    assert alert["alert_id"] == alert_id("MOD-009", "binance", "BTCUSDT", 3)
    assert (alert["value"], alert["severity"], alert["evidence"]["direction"]) == (-2500.0, "high", "down")


def test_a_burst_ends_below_half_the_threshold_or_on_the_other_sign_which_may_start_the_next(
    config: Config,
) -> None:
    base = [fill(T - 6 * SEC + i * SEC // 2, i + 1, 128.0, 1_000.0) for i in range(4)]
    up = [fill(T + i * SEC // 10, 10 + i, 129.0, 1_000.0) for i in range(3)]  # one burst, then open
    ids = [a["alert_id"] for a in bursts(config, base + up)]
    assert ids == [alert_id("MOD-009", "binance", "BTCUSDT", 10)]
    # back within half the threshold ends it; up again starts the next one
    rows = [*base, *up, fill(T + SEC, 20, 128.2), fill(T + 2 * SEC, 21, 129.0)]
    starts = {a["event_ids"][0] for a in bursts(config, rows)}
    assert starts == {"trade:binance:BTCUSDT:10", "trade:binance:BTCUSDT:21"}
    # at 127 the move is down past the threshold: the up burst ends there and the down one starts
    rows = [*base, *up, fill(T + SEC, 20, 127.0)]
    by_trade = {a["event_ids"][0]: a["value"] for a in bursts(config, rows)}
    assert by_trade == {"trade:binance:BTCUSDT:10": BPS, "trade:binance:BTCUSDT:20": -BPS}


def test_trades_out_of_time_order_count_in_the_span_of_their_time(config: Config) -> None:
    # the 200-USD trade stamped t - 6 s arrives last but one: outside t's span, which it sits in by arrival
    rows = [
        fill(T - 7 * SEC, 1, 128.0),
        fill(T - 2 * SEC, 2, 128.0, 300.0),
        fill(T - 6 * SEC, 3, 128.0, 200.0),
        fill(T, 4, 129.0, 300.0),
    ]
    (alert,) = bursts(config, rows, min_notional_usd=600.0)
    assert alert["evidence"]["notional_usd"] == 600.0 and alert["evidence"]["trades"] == 2
    assert bursts(config, rows, min_notional_usd=600.01) == []


def test_a_burst_spanning_micro_batches_and_restarts_gives_the_one_batch_result(
    config: Config, tmp_path: Path
) -> None:
    rows = [fill(T - 10 * SEC + i * SEC, i + 1, 128.0 + (i > 6) * (i - 6) * 0.5, 300.0) for i in range(16)]
    whole = bursts(config, rows)
    assert len(whole) == 1
    for size in (1, 2, 3, 5):
        assert bursts(config, rows, size) == whole
    cfg = market_config(config, momentum={"threshold_bps": BPS})
    restarted = run_engine(
        cfg.model_copy(update={"modules": ("MOD-009",)}),
        rows,
        cuts=range(2, 16, 2),
        state_dir=tmp_path / "state",
    )
    assert [a["alert_id"] for b in restarted for a in b.alerts.to_pylist()] == [whole[0]["alert_id"]]
