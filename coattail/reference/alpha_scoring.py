"""MOD-011 alpha-scoring, reference version (docs/DETECTORS.md, MOD-011), over a whole input.

Written from the page: each consumed alert's decision event is found from the module's own rule (the
whale or burst trade; the event that closed the flow window; the event at whose arrival the sliced run
closed; MOD-010's transfer when it moves a stablecoin or its reference instrument's clock was already
past the block time, else the market event that took that clock past it), the release rule at the end
of the input keeps the items whose clock is below the lowest final clock of the asset's participants,
prices are "as of" the reference instrument (the last counted trade whose clock at arrival is at most
``x``), and a forward return exists when the last published price step (the feed's thinning rule) ends
after ``t + h``.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import polars as pl

from coattail.reference.alerts import alert_row
from coattail.reference.stream import KEY, US_PER_S
from core.events import CHAINS
from core.stats import t_sf
from pipeline.config import Config
from pipeline.onchain import transfer_key

if TYPE_CHECKING:
    # the settings' types only: the reference never runs detector code
    from pipeline.detectors.alpha_scoring import AlphaSettings
    from pipeline.detectors.sliced_whale import SlicedWhaleSettings

DETECTOR: Final = "MOD-011"
_NO_TIME: Final = -(2**62)
"""The clock of an instrument before its first event."""
CONSUMED: Final = ("MOD-001", "MOD-006", "MOD-007", "MOD-009", "MOD-010")
ONCHAIN_KINDS: Final = ("exchange_inflow", "exchange_outflow", "whale_transfer")
_SIDES: Final = {"buy": 1, "sell": -1}
SCORE_COLUMNS: Final = {
    "asset": pl.Utf8,
    "detector": pl.Utf8,
    "exchange": pl.Utf8,
    "symbol": pl.Utf8,
    "horizon_s": pl.Int64,
    "alert_id": pl.Utf8,
    "decision_ts": pl.Int64,
    "ts_event": pl.Int64,
    "direction": pl.Int64,
    "forward_bps": pl.Float64,
    "count": pl.Int64,
    "mean_bps": pl.Float64,
    "std_bps": pl.Float64,
    "hit_rate": pl.Float64,
    "t_stat": pl.Float64,
}
SIGNAL_COLUMNS: Final = {
    "alert_id": pl.Utf8,
    "asset": pl.Utf8,
    "detector": pl.Utf8,
    "exchange": pl.Utf8,
    "symbol": pl.Utf8,
    "source_alert_id": pl.Utf8,
    "ts_event": pl.Int64,
    "direction": pl.Int64,
    "horizon_s": pl.Int64,
    "price": pl.Float64,
    "count": pl.Int64,
    "mean_bps": pl.Float64,
    "hit_rate": pl.Float64,
    "t_stat": pl.Float64,
}


def alpha_outputs(
    annotated: pl.DataFrame,
    transfers: pl.DataFrame,
    alerts: list[dict[str, Any]],
    config: Config,
    settings: AlphaSettings,
    sliced: SlicedWhaleSettings,
) -> tuple[list[dict[str, Any]], pl.DataFrame, pl.DataFrame]:
    """Follow-signal alerts, ``alpha_scores`` rows and ``signals`` rows (``transfers``: the valid
    transfers with ``arrival``, to find each MOD-010 alert's decision event)."""
    events = annotated.sort("arrival").with_columns(
        pl.col("ts_event").cum_max().over(list(KEY)).alias("clock")
    )
    keys = {
        k: events.filter((pl.col("exchange") == k[0]) & (pl.col("symbol") == k[1]))
        for k in events.select(list(KEY)).unique().rows()
    }
    final = {k: int(f["clock"].max()) for k, f in keys.items()}  # type: ignore[arg-type]
    delay = config.spark.watermark_seconds * US_PER_S
    out_alerts: list[dict[str, Any]] = []
    scores: list[dict[str, Any]] = []
    signals: list[dict[str, Any]] = []
    for asset, ref in sorted(config.instruments.reference.items()):
        members = [k for k in config.active_instruments if config.instruments.asset_of(*k) == asset]
        if not members or any(k not in final for k in members):
            continue  # a participant without a valid event holds the asset back
        floor = min(final[k] for k in members)
        items = []
        for a in alerts:
            key = (a["exchange"], a["symbol"])
            if a["exchange"] in CHAINS:  # MOD-010's: produced on its asset's reference instrument
                key = transfer_key(a["exchange"], a["symbol"], config.tokens, config.instruments)
            if a["detector"] in CONSUMED and key in members:
                if a["detector"] == "MOD-010":
                    stable = json.loads(a["evidence"])["asset"] in config.tokens.stablecoins
                    t, clock = _onchain_decision(a, keys[key], transfers, stable)
                else:
                    t, clock = _decision(a, keys[key], delay, sliced)
                if clock < floor:
                    items.append((clock, t, a["exchange"], a["symbol"], a["detector"], a["alert_id"], a))
        prices = keys.get((ref[0], ref[1]))
        if prices is None:
            continue
        known, price_at = _prices(prices, floor, settings)
        ordered = sorted(items, key=lambda i: i[:6])
        _score(asset, ordered, known, price_at, settings, config.tokens.stablecoins, out_alerts, scores,
               signals)
    return (
        out_alerts,
        pl.DataFrame(scores, schema=SCORE_COLUMNS),
        pl.DataFrame(signals, schema=SIGNAL_COLUMNS),
    )


def _decision(
    alert: dict[str, Any], key: pl.DataFrame, delay: int, sliced: SlicedWhaleSettings
) -> tuple[int, int]:
    """``(decision time, clock)``: the ``ts_event`` and key clock of the event whose arrival raised it."""
    clock = key["clock"].to_numpy()
    ts = key["ts_event"].to_numpy()
    evidence = json.loads(alert["evidence"])
    if alert["detector"] in ("MOD-001", "MOD-009"):  # raised at the trade itself
        trade_id = (
            evidence["trade_id"] if alert["detector"] == "MOD-001"
            else int(str(alert["event_ids"][0]).rsplit(":", 1)[1])
        )
        trade = key.with_row_index("i").filter(
            (pl.col("kind") == "trade") & (pl.col("trade_id") == trade_id) & ~pl.col("duplicate")
        )
        i = int(trade["i"][0])
    elif alert["detector"] == "MOD-006":
        i = int(np.searchsorted(clock - delay, int(alert["window_end"]), side="left"))
    else:
        counted = key.with_row_index("i").filter(
            (pl.col("kind") == "trade")
            & ~pl.col("late")
            & ~pl.col("duplicate")
            & pl.col("notional_usd").is_not_null()
        )
        rows = counted["i"].to_numpy()
        first_id = int(str(alert["event_ids"][0]).rsplit(":", 1)[1])  # the run's first trade
        first = int(np.flatnonzero(counted["trade_id"].to_numpy() == first_id)[0])
        last = first + int(evidence["trades"]) - 1
        gap = sliced.max_gap_ms * 1000
        after = np.flatnonzero(
            (np.arange(len(clock)) >= rows[last]) & (clock > int(evidence["last_ts"]) + gap)
        )
        ends = [int(after[0])] if len(after) else []
        if last + 1 < len(rows):
            ends.append(int(rows[last + 1]))
        i = min(ends)
    return int(ts[i]), int(clock[i])


def _onchain_decision(
    alert: dict[str, Any], key: pl.DataFrame, transfers: pl.DataFrame, stable: bool
) -> tuple[int, int]:
    """``(ts_event, clock)`` of a MOD-010 alert's decision event: the transfer itself when it moves a
    ``stable`` coin (priced at 1, never held) or when its reference instrument's clock (``key``: its
    market events by arrival) had passed the block time at its arrival, else the first market event
    past the block time (necessarily a later one). The transfer's clock is the instrument's as it
    arrived (none before its first event). The first arrival of the transfer is the one alerted (a later
    copy is a duplicate)."""
    evidence = json.loads(alert["evidence"])
    copies = transfers.filter(
        (pl.col("chain") == evidence["chain"]) & (pl.col("tx_hash") == evidence["tx_hash"])
        & (pl.col("log_index") == evidence["log_index"])
    )
    arrival = int(copies["arrival"].min())  # type: ignore[arg-type]
    block = int(alert["ts_event"])
    arrivals = key["arrival"].to_numpy()
    clock = key["clock"].to_numpy()
    prior = np.flatnonzero(arrivals < arrival)
    if stable:
        return block, int(clock[prior[-1]]) if len(prior) else _NO_TIME
    if len(prior) and clock[prior[-1]] > block:
        return block, int(clock[prior[-1]])
    i = int(np.flatnonzero(key["ts_event"].to_numpy() > block)[0])
    return int(key["ts_event"][i]), int(clock[i])


def _prices(events: pl.DataFrame, floor: int, settings: AlphaSettings) -> tuple[int, Any]:
    """The end of the last released published step, and ``x -> price as of x`` (None before any)."""
    clock = events["clock"].to_numpy().astype(np.int64)
    counted = ((events["kind"] == "trade") & ~events["late"] & ~events["duplicate"]).to_numpy()
    price = events["price"].fill_null(np.nan).to_numpy().astype(np.float64)
    c_clock, c_price = clock[counted], price[counted]
    before = np.concatenate(([np.iinfo(np.int64).min], np.maximum.accumulate(clock)[:-1]))
    seen = np.cumsum(counted) - counted  # counted trades strictly before each event
    step = np.flatnonzero((clock > before) & (seen > 0))
    step_price = c_price[seen[step] - 1]
    step_end = clock[step]
    bucket = settings.heartbeat_ms * 1000
    published = np.ones(len(step), dtype=bool)
    published[1:] = (step_price[1:] != step_price[:-1]) | (step_end[1:] // bucket != step_end[:-1] // bucket)
    released = step_end[published & (step_end < floor)]
    known = int(released.max()) if len(released) else np.iinfo(np.int64).min

    def price_at(x: int) -> float | None:
        i = int(np.searchsorted(c_clock, x, side="right")) - 1
        return None if i < 0 else float(c_price[i])

    return known, price_at


def _stats(values: list[float]) -> dict[str, Any]:
    n = len(values)
    mean = sum(values) / n if n else 0.0
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n >= 2 else None
    return {
        "count": n,
        "mean_bps": mean,
        "std_bps": std,
        "hit_rate": sum(v > 0 for v in values) / n if n else 0.0,
        "t_stat": mean / (std / math.sqrt(n)) if std else None,
    }


def _score(
    asset: str,
    items: list[tuple[Any, ...]],
    known: int,
    price_at: Any,
    s: AlphaSettings,
    stablecoins: tuple[str, ...],
    alerts: list[dict[str, Any]],
    scores: list[dict[str, Any]],
    signals: list[dict[str, Any]],
) -> None:
    horizons = [h * US_PER_S for h in s.horizons_s]
    retention = s.retention_s * US_PER_S
    obs: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    seq = 0
    for clock, t, exchange, symbol, detector, aid, alert in items:
        evidence = json.loads(alert["evidence"])
        if detector == "MOD-010":
            kind = alert["kind"]
            sign = _stance(kind, evidence["asset"], s, stablecoins) if kind in ONCHAIN_KINDS else 0
            t = int(evidence["ts_recv"])
            # the source is the whale's wallet, the side of the transfer that is not the exchange
            exchange = evidence["to_addr" if alert["kind"] == "exchange_outflow" else "from_addr"]
        elif detector == "MOD-009":
            sign = int(math.copysign(1, alert["value"])) if alert["value"] else 0
        else:
            sign = _SIDES.get(evidence.get("direction" if detector == "MOD-006" else "side", ""), 0)
        if sign == 0:
            continue
        seq += 1
        if t < clock - retention or known <= t:
            continue
        p0 = price_at(t)
        if p0 is None:
            continue
        fwd = [sign * (price_at(t + h) - p0) / p0 * 1e4 if known > t + h else None for h in horizons]
        obs.setdefault((detector, exchange, symbol), []).append(
            {"seq": seq, "t": t, "id": aid, "dir": sign, "p0": p0, "fwd": fwd, "alert": alert}
        )
    sig = s.horizons_s.index(s.signal_horizon_s)
    for (detector, exchange, symbol), mine in sorted(obs.items()):

        def window(i: int, keep: Any, mine: list[dict[str, Any]] = mine) -> dict[str, Any]:
            chosen = sorted(
                (o for o in mine if o["fwd"][i] is not None and keep(o)), key=lambda o: (o["t"], o["id"])
            )
            return _stats([o["fwd"][i] for o in chosen[-s.window :]])

        for o in mine:
            for i, h in enumerate(horizons):
                if o["fwd"][i] is None:
                    continue
                stats = window(
                    i, lambda p, o=o: p["seq"] <= o["seq"] and (p["t"], p["id"]) <= (o["t"], o["id"])
                )
                scores.append(
                    {
                        "asset": asset,
                        "detector": detector,
                        "exchange": exchange,
                        "symbol": symbol,
                        "horizon_s": s.horizons_s[i],
                        "alert_id": o["id"],
                        "decision_ts": o["t"],
                        "ts_event": o["t"] + h,
                        "direction": o["dir"],
                        "forward_bps": o["fwd"][i],
                        **stats,
                    }
                )
            h = horizons[sig]
            stats = window(sig, lambda p, o=o, h=h: p["seq"] < o["seq"] and p["t"] + h < o["t"])
            if (
                stats["count"] < s.min_samples
                or stats["mean_bps"] < s.min_edge_bps
                or stats["hit_rate"] < s.min_hit_rate
                or (s.false_positive_rate is not None and (
                    stats["t_stat"] is None
                    or t_sf(stats["t_stat"], stats["count"] - 1) > s.false_positive_rate
                ))
            ):
                continue
            row = {
                "asset": asset,
                "detector": detector,
                "exchange": exchange,
                "symbol": symbol,
                "source_alert_id": o["id"],
                "ts_event": o["t"],
                "direction": o["dir"],
                "horizon_s": s.signal_horizon_s,
                "price": o["p0"],
                "count": stats["count"],
                "mean_bps": stats["mean_bps"],
                "hit_rate": stats["hit_rate"],
                "t_stat": stats["t_stat"],
            }
            alert = alert_row(
                detector=DETECTOR,
                kind="follow_signal",
                exchange=exchange,
                symbol=symbol,
                key=f"follow:{o['id']}",
                ts_event=o["t"],
                severity=_severity(stats["mean_bps"], s.min_edge_bps),
                value=float(o["dir"]),
                threshold=s.min_edge_bps,
                evidence=json.dumps(
                    {
                        k: row[k]
                        for k in (
                            "asset",
                            "detector",
                            "source_alert_id",
                            "horizon_s",
                            "price",
                            "count",
                            "mean_bps",
                            "hit_rate",
                            "t_stat",
                        )
                    },
                    sort_keys=True,
                    separators=(",", ":"),
                ),
                event_ids=[],
                ts_sent=o["alert"]["ts_sent"],
            )
            signals.append({"alert_id": alert["alert_id"], **row})
            alerts.append(alert)


def _stance(kind: str, asset: str, s: AlphaSettings, stablecoins: tuple[str, ...]) -> int:
    """MOD-010's configured direction; unconfigured: a volatile asset's inflow -1 and outflow +1, a
    stablecoin's the reverse, a whale transfer 0."""
    configured = s.onchain_stance.get(asset, {})
    if kind in configured:
        return int(configured[kind])
    flip = -1 if asset in stablecoins else 1
    return {"exchange_inflow": -flip, "exchange_outflow": flip}.get(kind, 0)


def _severity(mean: float, edge: float) -> str:
    return "high" if mean >= 4 * edge else "medium" if mean >= 2 * edge else "low"
