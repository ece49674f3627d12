"""The synthetic market: trades and top-of-book quotes for many instruments, written as a tape.

Model, per base asset and venue (``sim.market`` holds the figures):

- **Arrivals**: a Hawkes process (exponential kernel, branching ratio ``BRANCHING``) drawn in its
  cluster form one generation at a time; its immigrant rate follows an intraday cycle (busiest at
  15:00 UTC) and the asset's volatility factor, a mean-reverting log process per minute.
- **Price**: one path per asset on a 100 ms grid (Gaussian steps scaled by the volatility factor, rare
  jumps), shared by every venue with a constant small basis; flash crashes bend it.
- **Quotes**: spread in ticks grows with the square root of the volatility factor and right after a
  jump; trades print at the ask (taker buys) or the bid (taker sells).
- **Sizes**: log-normal USD notionals, capped at ``NATURAL_CAP`` of the whale threshold so MOD-001
  fires only on injected whales; no instrument is silent for more than ``HEARTBEAT_US``.
- **Ids**: consecutive trade ids and quote update ids per instrument.

The tape is built one hour of event time at a time (bounded memory), every random stream is derived
from the seed, and nothing reads the clock: the same arguments give a byte-identical tape.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from core.errors import ConfigError
from core.tape import Manifest, TapeWriter
from pipeline.config import Config
from pipeline.detectors.volume_anomaly import VolumeAnomalySettings
from sim import inject, onchain
from sim.inject import Plan, crash_multiplier, drift_log, quote_id, threshold_usd, trade_id
from sim.market import DAY_US, SIZE_SIGMA, Asset, Instrument, instruments, intraday_factor
from sim.process import cox_times, fill_gaps, hawkes_offspring, ou_log_factor
from sim.scenario import Scenario

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

CHUNK_US = 3_600_000_000
GRID_US = 100_000
MINUTE_US = inject.MINUTE_US
BRANCHING = 0.5
DECAY_US = 250_000.0
VOL_SIGMA = 0.25
VOL_REVERSION = 1 / 90
JUMPS_PER_DAY = 4.0
SIDES = ("buy", "sell", "unknown")
CALM_Z = 3.0


@dataclass(frozen=True)
class GenerateSpec:
    """Everything a generation depends on (and nothing else: no clock, no environment)."""

    scenario: Scenario
    symbols: tuple[str, ...]
    exchanges: tuple[str, ...]
    start_us: int
    duration_us: int
    seed: int = 7
    scale: float = 1.0

    def check(self) -> None:
        """Reject values that cannot make a tape."""
        if not 0 < self.scale <= 100:
            raise ConfigError(f"--scale {self.scale}: must be in (0, 100]")
        if self.duration_us < MINUTE_US:
            raise ConfigError("--duration must be at least 1m")
        if self.seed < 0:
            raise ConfigError("--seed must be a non-negative integer")


@dataclass
class _AssetState:
    asset: Asset
    log_price: float
    vol_state: float
    rng: np.random.Generator


@dataclass
class _InstState:
    rng: np.random.Generator
    next_trade_id: int
    next_update_id: int
    carry: I64
    history: list[float]
    """USD notional of the instrument's last minutes (the MOD-002 baseline)."""


@dataclass
class _Path:
    """One chunk of an asset's price path and spread factor on the grid."""

    t0: int
    log_mid: F64
    spread_factor: F64
    vol_minute: F64

    def mid_at(self, ts: I64) -> F64:
        """The mid price at each time."""
        return self.at(ts)[0]

    def at(self, ts: I64) -> tuple[F64, F64]:
        idx = np.clip((ts - self.t0) // GRID_US, 0, self.log_mid.size - 1)
        return np.exp(self.log_mid[idx]), self.spread_factor[idx]


def generate(
    spec: GenerateSpec,
    config: Config,
    out: Path,
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    origin: list[str] | None = None,
) -> Manifest:
    """Generate the tape described by ``spec`` into ``out``; ``progress(done_us, total_us)`` per chunk."""
    spec.check()
    insts = instruments(list(spec.symbols), list(spec.exchanges))
    scenario = onchain.sell_offs(spec.scenario, spec.start_us, spec.duration_us, spec.seed)
    plan = inject.build_plan(scenario, insts, spec.start_us, spec.duration_us, spec.seed, spec.scale, config)
    transfers = onchain.plan_transfers(scenario, insts, spec.start_us, spec.duration_us, spec.seed, config)
    assets: dict[str, _AssetState] = {}
    for i, name in enumerate(dict.fromkeys(inst.asset.name for inst in insts)):
        asset = next(x.asset for x in insts if x.asset.name == name)
        rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(1, i)))
        assets[name] = _AssetState(asset, float(np.log(asset.price)) + rng.normal(0, 0.02), 0.0, rng)
    states = []
    for inst in insts:
        rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(2, inst.index)))
        states.append(
            _InstState(
                rng=rng,
                next_trade_id=int(rng.integers(10**8, 5 * 10**9)),
                next_update_id=int(rng.integers(10**9, 5 * 10**10)),
                carry=np.empty(0, dtype=np.int64),
                history=[],
            )
        )
    end = spec.start_us + spec.duration_us
    seq = 0
    pending: Future[None] | None = None
    with TapeWriter(out, overwrite=overwrite) as writer, ThreadPoolExecutor(1) as pool:
        t0 = spec.start_us
        while t0 < end:
            # chunks end on whole hours of the epoch, so detector windows never straddle two chunks
            t1 = min((t0 // CHUNK_US + 1) * CHUNK_US, end)
            paths = {name: _advance_path(st, t0, t1, plan, name) for name, st in assets.items()}
            if transfers is not None:
                for name, path in paths.items():
                    transfers.take(name, t0, t1, path.mid_at)
            trades, quotes = [], []
            for inst, st in zip(insts, states, strict=True):
                path = paths[inst.asset.name]
                trades.append(_trades(inst, st, path, plan, config, spec.scale, t0, t1, end))
                quotes.append(_quotes(inst, st, path, plan, spec.scale, t0, t1))
            tables = _assemble(insts, trades, quotes, seq)
            seq += tables[0].num_rows + tables[1].num_rows
            # Parquet encoding releases the GIL: write this chunk while the next one is drawn
            if pending is not None:
                pending.result()
            pending = pool.submit(_write, writer, tables)
            if progress is not None:
                progress(t1 - spec.start_us, spec.duration_us)
            t0 = t1
        if pending is not None:
            pending.result()
        labels, faults = inject.labels_and_faults(plan, config)
        if transfers is not None:
            writer.write("transfer", transfers.table(seq))
            labels += transfers.labels
        return writer.close(
            source="synthetic",
            origin=origin or [],
            scenario=spec.scenario.name,
            seed=spec.seed,
            labels=labels,
            faults=faults or None,
            extra={
                "generator": {
                    "symbols": list(spec.symbols),
                    "exchanges": list(spec.exchanges),
                    "start_us": spec.start_us,
                    "duration_us": spec.duration_us,
                    "scale": spec.scale,
                    "instruments": [f"{i.exchange}:{i.symbol}" for i in insts],
                }
            },
        )


def _advance_path(st: _AssetState, t0: int, t1: int, plan: Plan, name: str) -> _Path:
    asset = st.asset
    n_min = -(-(t1 - t0) // MINUTE_US)
    vol = ou_log_factor(st.rng, n_min, st.vol_state, VOL_SIGMA, VOL_REVERSION)
    st.vol_state = float(vol[-1])
    vol_minute = np.exp(vol - VOL_SIGMA**2 / 2)
    n = -(-(t1 - t0) // GRID_US)
    minute_of = (np.arange(n) * GRID_US) // MINUTE_US
    step_sigma = asset.daily_vol * np.sqrt(GRID_US / DAY_US)
    steps = st.rng.normal(0.0, step_sigma, size=n) * vol_minute[minute_of]
    bump = np.ones(n)
    n_jumps = st.rng.poisson(JUMPS_PER_DAY * (t1 - t0) / DAY_US)
    for at in np.sort(st.rng.integers(0, n, size=n_jumps)).tolist():
        steps[at] += st.rng.choice([-1.0, 1.0]) * st.rng.uniform(0.001, 0.003)
        span = min(n - at, 50)
        bump[at : at + span] += 0.8 * np.exp(-np.arange(span) / 15.0)
    if name in plan.moves or name in plan.holds:  # only then: tapes without them keep their bytes
        steps = inject.steer(steps, t0 + np.arange(n, dtype=np.int64) * GRID_US, GRID_US,
                             plan.moves.get(name, []), plan.holds.get(name, []))  # fmt: skip
    log_mid = st.log_price + np.cumsum(steps)
    st.log_price = float(log_mid[-1])
    crashes = plan.crashes.get(name)
    drifts = plan.drifts.get(name)
    grid_t = t0 + np.arange(n, dtype=np.int64) * GRID_US
    if crashes:
        log_mid = log_mid + np.log(crash_multiplier(grid_t, crashes))
    if drifts:
        log_mid = log_mid + drift_log(grid_t, drifts)
    return _Path(t0, log_mid, np.sqrt(vol_minute[minute_of]) * bump, vol_minute)


def _minute_rates(inst: Instrument, path: _Path, scale: float, t0: int, t1: int, per_trade: float) -> F64:
    starts = t0 + np.arange(path.vol_minute.size, dtype=np.int64) * MINUTE_US
    widths = np.minimum(starts + MINUTE_US, t1) - starts
    rate = inst.trades_per_day / 1440.0 * scale * per_trade
    out: F64 = rate * intraday_factor(starts) * path.vol_minute * widths / MINUTE_US
    return out


def _natural_times(times: I64, t0: int, t1: int, gaps: list[inject.Interval]) -> I64:
    # the chunk's ends are sentinels so that the heartbeat also covers a quiet chunk's head and tail
    filled = fill_gaps(np.append(times, np.int64(t1)), t0, inject.HEARTBEAT_US)[:-1]
    for gap in gaps:
        filled = filled[(filled < gap.start) | (filled >= gap.end)]
    return filled


def _merge(natural: I64, injected: list[int], t0: int, t1: int) -> tuple[I64, I64]:
    """Natural and injected times in order; returns (times, injected row index or -1)."""
    inj = np.asarray(injected, dtype=np.int64)
    sel = np.flatnonzero((inj >= t0) & (inj < t1))
    if sel.size == 0:
        return natural, np.full(natural.size, -1, dtype=np.int64)
    ts = np.concatenate([natural, inj[sel]])
    src = np.concatenate([np.full(natural.size, -1, dtype=np.int64), sel])
    # stable: at equal times natural rows first, then injected ones in scenario order
    order = np.argsort(ts, kind="stable")
    return ts[order], src[order]


def _spread_override(ts: I64, intervals: list[inject.Interval]) -> tuple[F64, I64]:
    bps = np.full(ts.size, np.nan)
    tag = np.full(ts.size, -1, dtype=np.int64)
    for iv in intervals:
        m = (ts >= iv.start) & (ts < iv.end)
        bps[m] = iv.value
        tag[m] = iv.tag
    return bps, tag


def _book(
    inst: Instrument, path: _Path, ts: I64, noise: F64 | None, override: F64, shifts: list[inject.Interval]
) -> tuple[I64, I64, F64]:
    """Bid and ask in ticks and the mid price at ``ts``."""
    mid, factor = path.at(ts)
    mid = mid * (1 + inst.basis_bps / 1e4)
    if shifts:  # only then: a tape without dislocations keeps its bytes
        mid = mid * (1 + inject.price_shift(ts, shifts) / 1e4)
    raw = inst.base_spread_ticks * factor * (1.0 if noise is None else (1 + 0.15 * noise))
    ticks: I64 = np.maximum(1, np.rint(raw)).astype(np.int64)
    wide = ~np.isnan(override)
    if wide.any():
        ticks[wide] = np.ceil(override[wide] * mid[wide] / 1e4 / inst.tick).astype(np.int64)
    bid: I64 = np.floor(mid / inst.tick - ticks / 2).astype(np.int64)
    ask: I64 = bid + ticks
    return bid, ask, mid


def _px(ticks: I64, tick: float) -> F64:
    decimals = max(0, round(-np.log10(tick)) + 1)
    out: F64 = np.round(ticks * tick, decimals)
    return out


def _trades(
    inst: Instrument,
    st: _InstState,
    path: _Path,
    plan: Plan,
    config: Config,
    scale: float,
    t0: int,
    t1: int,
    end: int,
) -> dict[str, Any]:
    rng = st.rng
    imm = cox_times(rng, _minute_rates(inst, path, scale, t0, t1, 1 - BRANCHING), t0, MINUTE_US)
    kids = hawkes_offspring(rng, imm, BRANCHING, DECAY_US)
    allt = np.concatenate([st.carry, imm, kids])
    allt.sort(kind="stable")
    st.carry = allt[(allt >= t1) & (allt < end)]
    gaps = plan.gaps.get(inst.index, []) + plan.pauses.get(inst.index, [])
    natural = _natural_times(allt[allt < t1], t0, t1, gaps)
    rows = plan.trades.get(inst.index, inject.TradeRows())
    ts, src = _merge(natural, rows.ts, t0, t1)
    n = ts.size
    injected = src >= 0
    si = src[injected]
    flag = np.zeros(n, dtype=np.int64)
    flag[injected] = np.asarray(rows.flag, dtype=np.int64)[si] if si.size else 0
    side = (rng.random(n) < 0.5).astype(np.int64)
    if si.size:
        forced_side = np.asarray(rows.side, dtype=np.int64)[si]
        side[injected] = np.where(forced_side >= 0, forced_side, side[injected])
    override = _spread_override(ts, plan.spreads.get(inst.index, []))[0]
    bid, ask, _ = _book(inst, path, ts, None, override, plan.shifts.get(inst.index, []))
    price = _px(np.where(side == 0, ask, bid), inst.tick)
    threshold = threshold_usd(config, inst.symbol)
    notional = np.minimum(
        inst.median_notional * np.exp(SIZE_SIGMA * rng.standard_normal(n)), inject.NATURAL_CAP * threshold
    )
    if si.size:
        forced_n = np.asarray(rows.notional, dtype=np.float64)[si]
        notional[injected] = np.where(np.isnan(forced_n), notional[injected], forced_n)
    forced = np.zeros(n, dtype=bool)
    if si.size:
        forced[injected] = ~np.isnan(np.asarray(rows.notional, dtype=np.float64)[si])
    volume = config.settings_of(VolumeAnomalySettings)
    _calm(st, volume, ts, notional, flag == inject.NORMAL, src < 0, forced, t0, t1)
    lots = np.maximum(1, np.ceil(notional / price / inst.lot))
    qty = np.round(lots * inst.lot, 8)
    # copies (duplicates, corrupted records) repeat the last normal row before them
    normal = flag == inject.NORMAL
    source = np.maximum.accumulate(np.where(normal, np.arange(n), 0))
    price, qty, side = price[source], qty[source], side[source]
    consume = normal.astype(np.int64)
    skip = np.zeros(n, dtype=np.int64)
    if si.size:
        skip[injected] = np.asarray(rows.skip, dtype=np.int64)[si]
    ids = st.next_trade_id - 1 + np.cumsum(consume * (1 + skip))
    if n:
        st.next_trade_id = int(ids[-1]) + 1
    price = np.where(flag == inject.BAD_PRICE, 0.0, price)
    qty = np.where(flag == inject.BAD_SIZE, -qty, qty)
    side = np.where(flag == inject.BAD_SIDE, 2, side)
    tags = np.full(n, -1, dtype=np.int64)
    if si.size:
        tags[injected] = np.asarray(rows.tag, dtype=np.int64)[si]
    _record_trade_ids(plan, inst, tags, ids, price * qty)
    _record_gap_ends(plan, inst, ts, ids, "trade")
    return {"ts": ts, "trade_id": ids, "price": price, "qty": qty, "side": side}


def _calm(
    st: _InstState,
    settings: VolumeAnomalySettings,
    ts: I64,
    notional: F64,
    counted: npt.NDArray[np.bool_],
    natural: npt.NDArray[np.bool_],
    forced: npt.NDArray[np.bool_],
    t0: int,
    t1: int,
) -> None:
    """Shrink the natural trades of any minute that would reach ``CALM_Z`` against its trailing baseline.

    Log-normal sizes and clustered arrivals make a chance volume anomaly a matter of time; the tape's
    labels must be the whole truth, so only injected spikes, crashes and whales may stand out. A minute
    holding a whale or burst trade is left alone (its label covers or tolerates an alert).
    """
    first = t0 // MINUTE_US
    bounds = np.searchsorted(ts, (first + np.arange(-(-(t1 - t0) // MINUTE_US) + 1)) * MINUTE_US)
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        v = float(notional[lo:hi][counted[lo:hi]].sum())
        hist = np.asarray(st.history[-settings.baseline_windows :])
        if hist.size >= settings.min_history and not forced[lo:hi].any():
            limit = hist.mean() + CALM_Z * max(float(hist.std()), settings.std_floor_usd)
            if v > limit and v >= settings.min_notional_usd:
                shrink = natural[lo:hi] & counted[lo:hi]
                part = float(notional[lo:hi][shrink].sum())
                if part > 0:
                    factor = max(0.0, 1 - (v - limit) / part)
                    notional[lo:hi] = np.where(shrink, notional[lo:hi] * factor, notional[lo:hi])
                    v = float(notional[lo:hi][counted[lo:hi]].sum())
        st.history.append(v)
    del st.history[: -settings.baseline_windows]


def _quotes(
    inst: Instrument, st: _InstState, path: _Path, plan: Plan, scale: float, t0: int, t1: int
) -> dict[str, Any]:
    rng = st.rng
    raw = cox_times(rng, _minute_rates(inst, path, scale, t0, t1, inst.quotes_per_trade), t0, MINUTE_US)
    natural = _natural_times(raw, t0, t1, plan.gaps.get(inst.index, []))
    rows = plan.quotes.get(inst.index, inject.QuoteRows())
    ts, src = _merge(natural, rows.ts, t0, t1)
    n = ts.size
    override, tags = _spread_override(ts, plan.spreads.get(inst.index, []))
    bid, ask, mid = _book(inst, path, ts, rng.standard_normal(n), override, plan.shifts.get(inst.index, []))
    injected = src >= 0
    crossed = np.zeros(n, dtype=bool)
    if injected.any():
        crossed[injected] = np.asarray(rows.crossed, dtype=bool)[src[injected]]
        tags[injected] = np.asarray(rows.tag, dtype=np.int64)[src[injected]]
    bid = np.where(crossed, ask + 1 + np.arange(n) % 3, bid)
    size = inst.median_notional * 4 / mid
    bid_qty = np.round(np.maximum(1, np.rint(size * rng.lognormal(0, 1, n) / inst.lot)) * inst.lot, 8)
    ask_qty = np.round(np.maximum(1, np.rint(size * rng.lognormal(0, 1, n) / inst.lot)) * inst.lot, 8)
    ids = st.next_update_id + np.arange(n, dtype=np.int64)
    st.next_update_id += n
    for k in np.unique(tags[tags >= 0]).tolist():
        have = plan.ids[k]
        have.extend(quote_id(inst, u) for u in ids[tags == k][: max(0, 50 - len(have))].tolist())
    _record_gap_ends(plan, inst, ts, ids, "quote")
    return {
        "ts": ts,
        "bid_px": _px(bid, inst.tick),
        "ask_px": _px(ask, inst.tick),
        "bid_qty": bid_qty,
        "ask_qty": ask_qty,
        "update_id": ids,
    }


def _record_trade_ids(plan: Plan, inst: Instrument, tags: I64, ids: I64, notional: F64) -> None:
    for k in np.unique(tags[tags >= 0]).tolist():
        sel = tags == k
        if k in plan.burst:
            plan.burst[k].extend(
                zip(notional[sel].tolist(), (trade_id(inst, i) for i in ids[sel].tolist()), strict=True)
            )
        else:
            plan.ids[k].extend(trade_id(inst, i) for i in ids[sel].tolist())


def _record_gap_ends(plan: Plan, inst: Instrument, ts: I64, ids: I64, kind: str) -> None:
    """A feed gap's label names the first event of each kind after it (the one that ends it)."""
    for gap in plan.gaps.get(inst.index, []):
        have = plan.ids[gap.tag]
        if any(e.startswith(f"{kind}:") for e in have):
            continue
        at = int(np.searchsorted(ts, gap.end))
        if at < ts.size:
            uid = int(ids[at])
            have.append(trade_id(inst, uid) if kind == "trade" else quote_id(inst, uid))


def _strings(index: I64, values: list[str]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(index.astype(np.int32)), pa.array(values)).cast(
        pa.string()
    )


def _assemble(
    insts: list[Instrument],
    trades: list[dict[str, Any]],
    quotes: list[dict[str, Any]],
    seq: int,
) -> tuple[pa.Table, pa.Table]:
    """Merge the instruments' rows of one chunk and number them in time order: (trades, quotes)."""
    t_ts = np.concatenate([t["ts"] for t in trades])
    q_ts = np.concatenate([q["ts"] for q in quotes])
    n_t = t_ts.size
    # one stable sort of both kinds' times numbers the rows; each kind's rows in that order are sorted
    order_all = np.argsort(np.concatenate([t_ts, q_ts]), kind="stable")
    seqs = np.empty(order_all.size, dtype=np.int64)
    seqs[order_all] = seq + np.arange(order_all.size, dtype=np.int64)
    t_order = order_all[order_all < n_t]
    q_order = order_all[order_all >= n_t] - n_t
    t_inst = np.repeat(np.arange(len(insts), dtype=np.int64), [t["ts"].size for t in trades])
    q_inst = np.repeat(np.arange(len(insts), dtype=np.int64), [q["ts"].size for q in quotes])
    exchanges = [i.exchange for i in insts]
    symbols = [i.symbol for i in insts]

    order = t_order
    cols = {k: np.concatenate([t[k] for t in trades])[order] for k in ("trade_id", "price", "qty", "side")}
    t_idx = t_inst[order]
    trade_table = pa.table(
        {
            "exchange": _strings(t_idx, exchanges),
            "symbol": _strings(t_idx, symbols),
            "trade_id": cols["trade_id"],
            "price": cols["price"],
            "qty": cols["qty"],
            "side": _strings(cols["side"], list(SIDES)),
            "ts_event": t_ts[order],
            "ts_recv": pa.nulls(t_ts.size, pa.int64()),
            "seq": seqs[:n_t][order],
        }
    )
    order = q_order
    q_idx = q_inst[order]
    qcols = {
        k: np.concatenate([q[k] for q in quotes])[order]
        for k in ("bid_px", "bid_qty", "ask_px", "ask_qty", "update_id")
    }
    quote_table = pa.table(
        {
            "exchange": _strings(q_idx, exchanges),
            "symbol": _strings(q_idx, symbols),
            **qcols,
            "ts_event": q_ts[order],
            "ts_recv": pa.nulls(q_ts.size, pa.int64()),
            "seq": seqs[n_t:][order],
        }
    )
    return trade_table, quote_table


def _write(writer: TapeWriter, tables: tuple[pa.Table, pa.Table]) -> None:
    writer.write("trade", tables[0])
    writer.write("quote", tables[1])
