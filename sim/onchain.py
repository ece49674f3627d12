"""The on-chain process of a synthetic tape: ordinary transfers, labelled whale transfers to and from
exchange wallets, and the sell-offs that some wallets' exchange inflows lead to.

- Ordinary transfers: per asset of the tape, Poisson arrivals (``transfers_per_hour``) on the chain's
  12-second block grid, each worth at most 10 % of the asset's MOD-010 threshold, between addresses of
  a pool of 64 (a few are exchange wallets): they never reach the threshold.
- Exchange-flow events (``sim.scenario.ExchangeFlow``): one transfer of ``multiple`` x the threshold at
  the asset's mid price at that time, from the whale's wallet to an exchange wallet of
  ``config/wallets.yaml`` (inflow), from one to the whale (outflow), or between the whale and another
  unlabelled address; each is a MOD-010 label. A stablecoin's flow is worth 1 USD a coin and draws no
  sell-off.
- Sell-offs (``sell_offs``): an inflow of a wallet whose ``sell_after_inflow`` draw (one seeded draw
  per inflow) comes out is followed, ``lag_minutes`` later, by a ``flash_crash`` of ``drop_pct`` on the
  asset: an ordinary scenario event appended to the scenario, so the market generator draws it and
  labels it like any other.

Every random stream derives from the seed with spawn keys of its own, so a scenario without an
``onchain`` section generates exactly the bytes it did before the process existed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pyarrow as pa

from core.errors import ConfigError
from core.events import TRANSFER_SCHEMA, transfer_id
from core.labels import Label
from pipeline.config import Config
from pipeline.detectors.onchain_whale import OnchainWhaleSettings
from sim.market import Instrument
from sim.scenario import HEAD_US, TAIL_US, ExchangeFlow, FlashCrash, Scenario, place

BLOCK_US: Final = 12_000_000
"""Ethereum's slot time: every transfer's block time is on this grid."""
FIRST_BLOCK: Final = 18_000_000
INDEXER_DELAY_US: Final = 2_000_000
"""How long after its block our (simulated) indexer sees a transfer: its ``ts_recv``."""
ORDINARY_SHARE: Final = 0.1
POOL: Final = 64
MINUTE_US: Final = 60_000_000


def sell_offs(scenario: Scenario, start_us: int, duration_us: int, seed: int) -> Scenario:
    """The scenario with a ``flash_crash`` after every exchange inflow whose wallet's tendency draws one
    (when it fits in the tape)."""
    if scenario.onchain is None:
        return scenario
    wallets = {w.name: w for w in scenario.onchain.wallets}
    extra = []
    for k, ev in enumerate(scenario.events):
        if (not isinstance(ev, ExchangeFlow) or ev.kind != "exchange_inflow" or ev.wallet is None
                or ev.stablecoin is not None):
            continue
        wallet = wallets[ev.wallet]
        if np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(20_000 + k,))).random() >= (
            wallet.sell_after_inflow
        ):
            continue
        when = place(ev, start_us, duration_us) + wallet.lag_minutes * MINUTE_US
        crash = FlashCrash(kind="flash_crash", at=0.0, instrument=ev.instrument, drop_pct=wallet.drop_pct)
        usable = duration_us - HEAD_US - TAIL_US - crash.length_us()
        # half a minute in: ``place`` rounds and aligns down to the minute, which lands on ``when``
        at = (when + MINUTE_US // 2 - start_us - HEAD_US) / usable if usable > 0 else -1.0
        if not 0.0 <= at <= 1.0:
            # the tendency's consequence falls past the tape's end (a short --duration of a preset): the
            # inflow stays, its sell-off is simply not in this tape, as it would not be in a real cut
            continue
        extra.append(crash.model_copy(update={"at": at}))
    return scenario.model_copy(update={"events": (*scenario.events, *extra)}) if extra else scenario


@dataclass
class _Pending:
    """Transfers drawn ahead of the market: priced (USD -> amount) when their chunk's path is known."""

    asset: str
    ts: int
    usd: float
    from_addr: str
    to_addr: str
    tx_hash: str
    label: dict[str, Any] | None = None


@dataclass
class OnchainPlan:
    """A tape's transfers before their amounts are known, and what ``take`` priced so far."""

    chain: str
    pending: list[_Pending] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)

    def take(self, asset: str, t0: int, t1: int, mid_at: Callable[[np.ndarray], np.ndarray]) -> None:
        """Price the asset's transfers with block times in ``[t0, t1)`` at the chunk's mid price."""
        due = [p for p in self.pending if p.asset == asset and t0 <= p.ts < t1]
        if not due:
            return
        mids = mid_at(np.array([p.ts for p in due], dtype=np.int64))
        for p, mid in zip(due, mids.tolist(), strict=True):
            row = {
                "chain": self.chain, "tx_hash": p.tx_hash, "log_index": 0,
                "block": FIRST_BLOCK + p.ts // BLOCK_US % 10_000_000, "ts_event": p.ts,
                "ts_recv": p.ts + INDEXER_DELAY_US, "asset": asset, "amount": p.usd / mid,
                "from_addr": p.from_addr, "to_addr": p.to_addr,
            }
            self.rows.append(row)
            if p.label is not None:
                ident = transfer_id(self.chain, p.tx_hash, 0)
                self.labels.append(Label(event_ids=(ident,), start_us=p.ts, end_us=p.ts, **p.label))

    def table(self, first_seq: int) -> pa.Table:
        """Every priced transfer in block-time order, numbered from ``first_seq``."""
        rows = sorted(self.rows, key=lambda r: (r["ts_event"], r["tx_hash"]))
        table = pa.Table.from_pylist(rows, schema=TRANSFER_SCHEMA)
        return table.append_column("seq", pa.array(range(first_seq, first_seq + len(rows)), pa.int64()))


def plan_transfers(
    scenario: Scenario, insts: list[Instrument], start_us: int, duration_us: int, seed: int, config: Config
) -> OnchainPlan | None:
    """Draw the tape's transfers (times, USD values, addresses, labels); ``None`` without ``onchain``."""
    process = scenario.onchain
    if process is None:
        return None
    labelled = config.wallets.chains.get(process.chain, {})
    exchanges = sorted(a for a, w in labelled.items() if w.kind == "exchange")
    if not exchanges:
        raise ConfigError(f"the on-chain process needs {process.chain} exchange wallets in wallets.yaml")
    settings = config.settings_of(OnchainWhaleSettings)
    plan = OnchainPlan(chain=process.chain)
    assets = list(dict.fromkeys(inst.asset.name for inst in insts))
    listed = {(inst.exchange, inst.symbol) for inst in insts}
    end = start_us + duration_us
    for a, asset in enumerate(assets):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(30_000 + a,)))
        pool = [_address(f"{asset}:pool:{i}") for i in range(POOL)] + exchanges
        n = int(rng.poisson(process.transfers_per_hour * duration_us / 3_600_000_000))
        times = np.sort(rng.integers(start_us, end, size=n))
        shares = ORDINARY_SHARE * np.exp(-1.5 * np.abs(rng.standard_normal(n)))
        ends = rng.integers(0, len(pool), size=(n, 2))
        for i in range(n):
            src, dst = pool[int(ends[i, 0])], pool[int(ends[i, 1])]
            if src == dst:
                continue
            usd = float(shares[i]) * settings.threshold(asset)
            tx_hash = "0x" + rng.bytes(32).hex()
            plan.pending.append(_Pending(asset, _block_time(int(times[i])), usd, src, dst, tx_hash))
    for k, ev in enumerate(scenario.events):
        if not isinstance(ev, ExchangeFlow):
            continue
        asset = ev.stablecoin or insts[ev.instrument % len(insts)].asset.name
        if ev.stablecoin is not None and ev.stablecoin not in config.tokens.stablecoins:
            raise ConfigError(f"event {k} ({ev.kind}) moves {ev.stablecoin}, which is not among the "
                              f"stablecoins of config/tokens.yaml ({', '.join(config.tokens.stablecoins)})")
        market = config.tokens.market_of(asset)
        ref = None if market is None else config.instruments.reference.get(market)
        if ref is None or (ref[0], ref[1]) not in listed:
            need = "none is configured" if ref is None else f"add {ref[0]}:{ref[1]} (--exchanges)"
            problem = f"event {k} ({ev.kind}) moves {asset}, counted on {market}'s reference instrument"
            raise ConfigError(f"{problem}; {need}")
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(40_000 + k,)))
        whale = whale_address(ev.wallet or str(k))
        other = _address(f"{asset}:counterparty:{k}")
        exchange = exchanges[int(rng.integers(0, len(exchanges)))]
        src, dst = {
            "exchange_inflow": (whale, exchange), "exchange_outflow": (exchange, whale),
            "whale_transfer": (whale, other),
        }[ev.kind]
        ts = _block_time(place(ev, start_us, duration_us) + 7_000_000)
        label = {
            "kind": ev.kind, "detector": "MOD-010", "exchange": process.chain, "symbol": asset,
            "note": f"{ev.multiple} x the threshold" + (f", wallet {ev.wallet}" if ev.wallet else ""),
        }
        plan.pending.append(_Pending(asset, ts, ev.multiple * settings.threshold(asset), src, dst,
                                     "0x" + rng.bytes(32).hex(), label))
    coins = {ev.stablecoin for ev in scenario.events if isinstance(ev, ExchangeFlow) and ev.stablecoin}
    for coin in sorted(coins):
        plan.take(coin, start_us, end, np.ones_like)  # a stablecoin's USD price is 1
    return plan


def _block_time(ts: int) -> int:
    return ts - ts % BLOCK_US


def whale_address(wallet: str) -> str:
    """The address of a whale's wallet named in ``onchain.wallets`` (an unnamed event's: its index)."""
    return _address(f"wallet:{wallet}")


def _address(name: str) -> str:
    """A deterministic, unlabelled Ethereum address for a name."""
    return "0x" + hashlib.sha256(name.encode()).hexdigest()[:40]
