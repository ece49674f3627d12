"""MOD-010 onchain-whale, reference version (docs/DETECTORS.md, MOD-010 and MOD-004 "Transfers").

Batch and direct: each transfer's price as of its block time is read off the reference instrument's
whole arrival sequence (the last counted trade before the first event with ``ts_event`` past the block
time), instead of being held; the spec says both are the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import polars as pl

from coattail.reference.alerts import alert_row
from coattail.reference.stream import US_PER_S
from coattail.run.outputs import DQ_COLUMNS
from core.events import CHAINS, transfer_id
from pipeline.alerts import evidence_json
from pipeline.config import Config
from pipeline.onchain import transfer_key

if TYPE_CHECKING:
    # the settings' types only: the reference never runs detector code
    from pipeline.detectors.onchain_whale import OnchainWhaleSettings

DETECTOR: Final = "MOD-010"
_NO_TIME: Final = -(2**62)


def onchain_outputs(
    annotated: pl.DataFrame, transfers: pl.DataFrame, config: Config, settings: OnchainWhaleSettings,
    dq_window_seconds: int,
) -> tuple[list[dict[str, Any]], pl.DataFrame]:
    """Alerts and the MOD-004 counts about transfers (``LATE_EVENT``, ``DUPLICATE_ID``, ``NO_PRICE``).

    ``annotated``: the valid market events with the reference's annotations (``late``, ``duplicate``);
    ``transfers``: the valid transfers; both with ``arrival``.
    """
    retention = settings.retention_seconds * US_PER_S
    stable = set(config.tokens.stablecoins)
    market = {
        (str(k[0]), str(k[1])): group.sort("arrival")
        for k, group in annotated.group_by(["exchange", "symbol"])
    }
    seen: set[str] = set()
    own_clock: dict[tuple[str, str], int] = {}
    alerts: list[dict[str, Any]] = []
    counts: list[tuple[str, str, int, str]] = []
    for t in transfers.sort("arrival").iter_rows(named=True):
        x = t["ts_event"]
        # keyed under its market's reference instrument (a stablecoin's configured market), whose clock
        # judges lateness; else under (chain, asset) with its block times as the clock
        key = transfer_key(t["chain"], t["asset"], config.tokens, config.instruments)
        ref = None if t["asset"] in stable or key[0] in CHAINS else key
        if key[0] in CHAINS:
            own_clock[key] = clock = max(own_clock.get(key, _NO_TIME), x)
        else:
            events = market.get(key)
            before = None if events is None else events.filter(pl.col("arrival") < t["arrival"])
            clock = _NO_TIME if before is None or before.is_empty() else int(before["ts_event"].max())  # type: ignore[arg-type]
        ident = transfer_id(t["chain"], t["tx_hash"], t["log_index"])
        if x < clock - retention:
            counts.append((t["chain"], t["asset"], x, "LATE_EVENT"))
            continue
        if ident in seen:
            counts.append((t["chain"], t["asset"], x, "DUPLICATE_ID"))
            continue
        seen.add(ident)
        if t["asset"] in stable:
            price: float | None = 1.0
        elif ref is None:
            price = None
        else:
            events = market.get(key)
            past = None if events is None else events.filter(pl.col("ts_event") > x)
            if past is None or past.is_empty():
                continue  # the clock never passes the block time: held to the end, not evaluated
            first_past = int(past["arrival"].min())  # type: ignore[arg-type]
            assert events is not None
            counted = events.filter(
                (pl.col("arrival") < first_past) & (pl.col("kind") == "trade") & ~pl.col("late")
                & ~pl.col("duplicate")
            )
            price = None if counted.is_empty() else float(counted["price"][-1])
        if price is None:
            counts.append((t["chain"], t["asset"], x, "NO_PRICE"))
            continue
        alert = _alert(t, price, None if ref is None else f"{key[0]}:{key[1]}", config, settings)
        if alert is not None:
            alerts.append(alert)
    width = dq_window_seconds * US_PER_S
    dq = pl.DataFrame(
        [(c, a, ts // width * width, r, 1) for c, a, ts, r in counts],
        schema={"exchange": pl.Utf8, "symbol": pl.Utf8, "window_start": pl.Int64, "reason": pl.Utf8,
                "count": pl.Int64},
        orient="row",
    )
    dq = dq.group_by(["exchange", "symbol", "window_start", "reason"]).agg(pl.col("count").sum())
    return alerts, dq.select(list(DQ_COLUMNS))


def _alert(
    t: dict[str, Any], price: float, instrument: str | None, config: Config, settings: OnchainWhaleSettings
) -> dict[str, Any] | None:
    usd = t["amount"] * price
    threshold = settings.thresholds_usd.get(t["asset"], settings.default_threshold_usd)
    if usd < threshold:
        return None
    levels = sorted(settings.severity_multiples.items(), key=lambda kv: kv[1])
    severity = [name for name, m in levels if usd >= m * threshold][-1]
    chain_wallets = config.wallets.chains.get(t["chain"], {})
    sender, receiver = chain_wallets.get(t["from_addr"]), chain_wallets.get(t["to_addr"])
    if receiver is not None and receiver.kind == "exchange":
        kind = "exchange_inflow"
    elif sender is not None and sender.kind == "exchange":
        kind = "exchange_outflow"
    else:
        kind = "whale_transfer"
    evidence = {
        "chain": t["chain"], "asset": t["asset"], "amount": t["amount"], "usd": usd, "price": price,
        "price_instrument": instrument, "from_addr": t["from_addr"], "to_addr": t["to_addr"],
        "from_label": sender.entity if sender else None, "from_kind": sender.kind if sender else None,
        "to_label": receiver.entity if receiver else None, "to_kind": receiver.kind if receiver else None,
        "tx_hash": t["tx_hash"], "log_index": t["log_index"], "block": t["block"], "ts_recv": t["ts_recv"],
        "multiple": usd / threshold,
    }
    return alert_row(
        detector=DETECTOR, kind=kind, exchange=t["chain"], symbol=t["asset"],
        key=f"{t['tx_hash']}:{t['log_index']}", ts_event=t["ts_event"], severity=severity, value=usd,
        threshold=threshold, evidence=evidence_json(evidence),
        event_ids=[transfer_id(t["chain"], t["tx_hash"], t["log_index"])], ts_sent=t["ts_sent"],
    )
