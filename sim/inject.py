"""Turning a scenario into injections (rows and interval effects) and, once ids are known, labels.

Injections are planned from the scenario alone (times, instruments, counts), before any natural event
exists, so the labels' kinds, instruments and spans do not depend on ``--scale`` or on the natural
market; only the volume of extra trades a spike needs (a multiple of the expected volume) does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.errors import ConfigError
from core.events import event_id
from core.labels import Label
from pipeline.config import Config
from pipeline.detectors.basis import BasisSettings
from pipeline.detectors.data_quality import DataQualitySettings
from pipeline.detectors.flow_imbalance import FlowImbalanceSettings
from pipeline.detectors.momentum import MomentumSettings
from pipeline.detectors.sliced_whale import SlicedWhaleSettings
from pipeline.detectors.volume_anomaly import VolumeAnomalySettings
from pipeline.detectors.whale import WhaleSettings
from pipeline.detectors.whale_impact import WhaleImpactSettings
from sim.market import SIZE_SIGMA, Instrument, intraday_factor
from sim.scenario import (
    BasisDislocation,
    CrossedBook,
    Duplicate,
    FeedGap,
    FlashCrash,
    LateEvent,
    Malformed,
    MomentumBurst,
    OneSided,
    Scenario,
    ScenarioEvent,
    SlicedWhale,
    SpreadBlowout,
    TradeIdGap,
    VolumeSpike,
    Whale,
    WhaleImpact,
    place,
)

MINUTE_US = 60_000_000
BASIS_WINDOW_US = 10_000_000
"""A basis dislocation lasts whole 10-second windows (MOD-005's default window)."""
HEARTBEAT_US = 8_000_000
"""No instrument is silent longer than twice this (so STALE_FEED only counts injected feed gaps)."""
NATURAL_CAP = 0.15
"""Natural trades stay below this fraction of the whale threshold (MOD-001 fires only on whales)."""
BURST_CAP = 0.1
"""Trades of a volume spike or crash stay below this fraction of the whale threshold."""

# trade row flags: how an injected row is made
NORMAL, DUPLICATE, BAD_PRICE, BAD_SIZE, BAD_SIDE = 0, 1, 2, 3, 4
_BAD_FLAG = {"price": BAD_PRICE, "size": BAD_SIZE, "side": BAD_SIDE}
_BAD_REASON = {"price": "NON_POSITIVE_PRICE", "size": "NON_POSITIVE_SIZE", "side": "BAD_SIDE"}
SIDE_NATURAL, SIDE_BUY, SIDE_SELL = -1, 0, 1


@dataclass
class TradeRows:
    """Injected trades of one instrument (columns of equal length)."""

    ts: list[int] = field(default_factory=list)
    notional: list[float] = field(default_factory=list)
    """USD notional, NaN for a natural size."""
    side: list[int] = field(default_factory=list)
    flag: list[int] = field(default_factory=list)
    skip: list[int] = field(default_factory=list)
    tag: list[int] = field(default_factory=list)

    def add(
        self,
        ts: int,
        tag: int,
        *,
        notional: float = float("nan"),
        side: int = SIDE_NATURAL,
        flag: int = NORMAL,
        skip: int = 0,
    ) -> None:
        """Append one row."""
        self.ts.append(ts)
        self.notional.append(notional)
        self.side.append(side)
        self.flag.append(flag)
        self.skip.append(skip)
        self.tag.append(tag)


@dataclass
class QuoteRows:
    """Injected quotes of one instrument."""

    ts: list[int] = field(default_factory=list)
    crossed: list[bool] = field(default_factory=list)
    tag: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Interval:
    """A time interval ``[start, end)`` of one instrument with an effect and the plan entry it serves."""

    start: int
    end: int
    tag: int
    value: float = 0.0


@dataclass
class Plan:
    """Everything a scenario injects, per instrument, plus what is needed to write its labels."""

    events: list[tuple[ScenarioEvent, Instrument, int]] = field(default_factory=list)
    trades: dict[int, TradeRows] = field(default_factory=dict)
    quotes: dict[int, QuoteRows] = field(default_factory=dict)
    spreads: dict[int, list[Interval]] = field(default_factory=dict)
    """Quote spread forced to ``value`` bps (blow-outs, crashes)."""
    gaps: dict[int, list[Interval]] = field(default_factory=dict)
    shifts: dict[int, list[Interval]] = field(default_factory=dict)
    """Prices moved by ``value`` bps against the asset's path (basis dislocations)."""
    instruments: list[Instrument] = field(default_factory=list)
    pauses: dict[int, list[Interval]] = field(default_factory=dict)
    """No natural trade of the instrument (quotes go on): around a sliced parent order."""
    crashes: dict[str, list[tuple[int, FlashCrash]]] = field(default_factory=dict)
    """Per asset: (start, event); the price path of every venue of the asset follows it."""
    drifts: dict[str, list[tuple[int, float, int]]] = field(default_factory=dict)
    """Per asset: (start, signed bps, span) of informed whales; every venue of the asset follows."""
    ids: dict[int, list[str]] = field(default_factory=dict)
    """Per plan entry: the event ids of its rows, filled in while the tape is generated."""
    burst: dict[int, list[tuple[float, str]]] = field(default_factory=dict)
    """Per spike/crash/one-sided/momentum entry: (notional, event id) of its extra trades."""
    moves: dict[str, list[Interval]] = field(default_factory=dict)
    """Per asset: its price path climbs ``value`` bps (falls when negative) evenly over the interval, and
    stays there (whale follow-through, momentum bursts)."""
    holds: dict[str, list[Interval]] = field(default_factory=dict)
    """Per asset: its price path stays flat over the interval (a whale without follow-through)."""


def threshold_usd(config: Config, symbol: str) -> float:
    """The MOD-001 threshold of a symbol."""
    return config.settings_of(WhaleSettings).threshold(symbol)


def expected_minute_notional(inst: Instrument, scale: float, intraday: float) -> float:
    """The natural trades' mean USD notional per minute (sizes are log-normal, see generator)."""
    per_minute = inst.trades_per_day / 1440.0 * scale * intraday
    return per_minute * inst.median_notional * float(np.exp(SIZE_SIGMA**2 / 2))


def build_plan(
    scenario: Scenario,
    insts: list[Instrument],
    start_us: int,
    duration_us: int,
    seed: int,
    scale: float,
    config: Config,
) -> Plan:
    """Place every scenario event and draw its injected rows (from its own seeded stream)."""
    plan = Plan(instruments=insts)
    for k, ev in enumerate(scenario.events):
        inst = insts[ev.instrument % len(insts)]
        t = place(ev, start_us, duration_us)
        plan.events.append((ev, inst, t))
        plan.ids[k] = []
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(10_000 + k,)))
        trades = plan.trades.setdefault(inst.index, TradeRows())
        quotes = plan.quotes.setdefault(inst.index, QuoteRows())
        threshold = threshold_usd(config, inst.symbol)
        if isinstance(ev, Whale):
            side = SIDE_BUY if ev.side == "buy" else SIDE_SELL
            trades.add(t + 7_000_000, k, notional=ev.multiple * threshold, side=side)
            if ev.drift_bps:
                signed = ev.drift_bps if ev.side == "buy" else -ev.drift_bps
                plan.drifts.setdefault(inst.asset.name, []).append(
                    (t + 7_000_000, signed, ev.drift_seconds * 1_000_000)
                )
        elif isinstance(ev, (VolumeSpike, FlashCrash)):
            span = ev.minutes * MINUTE_US
            base = expected_minute_notional(inst, scale, intraday_factor(np.array([t]))[0])
            floor = 3 * config.settings_of(VolumeAnomalySettings).min_notional_usd
            target = max(ev.multiple * base, floor) * ev.minutes
            times, sizes = _burst(rng, target, min(BURST_CAP * threshold, target / 20), t, span)
            sell_share = 0.9 if isinstance(ev, FlashCrash) else 0.3
            sides = np.where(rng.random(sizes.size) < sell_share, SIDE_SELL, SIDE_BUY)
            plan.burst[k] = []
            for ts, size, side in zip(times.tolist(), sizes.tolist(), sides.tolist(), strict=True):
                trades.add(ts, k, notional=size, side=side)
            if isinstance(ev, FlashCrash):
                plan.spreads.setdefault(inst.index, []).append(Interval(t, t + span, k, ev.spread_bps))
                plan.crashes.setdefault(inst.asset.name, []).append((t, ev))
        elif isinstance(ev, OneSided):
            base = expected_minute_notional(inst, scale, intraday_factor(np.array([t]))[0])
            floor = 1.5 * config.settings_of(FlowImbalanceSettings).min_notional_usd
            target = max(ev.multiple * base, floor)
            times, sizes = _burst(rng, target, min(BURST_CAP * threshold, target / 20), t, MINUTE_US)
            plan.burst[k] = []
            side = SIDE_BUY if ev.side == "buy" else SIDE_SELL
            for ts, size in zip(times.tolist(), sizes.tolist(), strict=True):
                trades.add(ts, k, notional=size, side=side)
        elif isinstance(ev, SlicedWhale):
            max_gap_us = config.settings_of(SlicedWhaleSettings).max_gap_ms * 1_000
            if ev.gap_ms * 1_000 > max_gap_us:
                raise ConfigError(
                    f"sliced_whale gap_ms {ev.gap_ms} exceeds MOD-007's max_gap_ms ({max_gap_us // 1_000}): "
                    "the slices would not make one run; lower gap_ms"
                )
            first = t + 7_000_000
            last = first + (ev.slices - 1) * ev.gap_ms * 1_000
            side = SIDE_BUY if ev.side == "buy" else SIDE_SELL
            for i in range(ev.slices):
                slice_ts = first + i * ev.gap_ms * 1_000
                trades.add(slice_ts, k, notional=ev.multiple * threshold / ev.slices, side=side)
            # natural fills next to the slices would join or split the run: none within the gap (and a margin)
            margin = max_gap_us + 1_000_000
            plan.pauses.setdefault(inst.index, []).append(Interval(first - margin, last + margin + 1, k))
        elif isinstance(ev, SpreadBlowout):
            plan.spreads.setdefault(inst.index, []).append(
                Interval(t, t + ev.minutes * MINUTE_US, k, ev.spread_bps)
            )
        elif isinstance(ev, CrossedBook):
            for i in range(ev.count):
                quotes.ts.append(t + 5_000_000 + i * 1_000)
                quotes.crossed.append(True)
                quotes.tag.append(k)
        elif isinstance(ev, FeedGap):
            plan.gaps.setdefault(inst.index, []).append(
                Interval(t + 5_000_000, t + 5_000_000 + ev.seconds * 1_000_000, k)
            )
        elif isinstance(ev, Duplicate):
            trades.add(t + 5_000_000, k)
            for _ in range(ev.count):
                trades.add(t + 5_000_000, k, flag=DUPLICATE)
        elif isinstance(ev, TradeIdGap):
            trades.add(t + 5_000_000, k, skip=ev.missing)
        elif isinstance(ev, Malformed):
            trades.add(t + 5_000_000, -1)
            for _ in range(ev.count):
                trades.add(t + 5_000_000, k, flag=_BAD_FLAG[ev.problem])
        elif isinstance(ev, LateEvent):
            for i in range(ev.count):
                quotes.ts.append(t + 5_000_000 + i * 200_000)
                quotes.crossed.append(False)
                quotes.tag.append(k)
        elif isinstance(ev, WhaleImpact):
            ts = t + 7_000_000
            sign = 1 if ev.side == "buy" else -1
            trades.add(ts, k, notional=ev.multiple * threshold, side=SIDE_BUY if sign > 0 else SIDE_SELL)
            if ev.follow_bps > 0:
                ramp = ev.ramp_s * 1_000_000
                follow = Interval(ts + 1_000_000, ts + 1_000_000 + ramp, k, sign * ev.follow_bps)
                plan.moves.setdefault(inst.asset.name, []).append(follow)
            else:
                last = max(config.settings_of(WhaleImpactSettings).horizons_s) * 1_000_000
                flat = Interval(ts - 1_000_000, ts + last + 10_000_000, k)
                plan.holds.setdefault(inst.asset.name, []).append(flat)
        elif isinstance(ev, MomentumBurst):
            sign = 1 if ev.direction == "up" else -1
            side = SIDE_BUY if sign > 0 else SIDE_SELL
            start, span = t + 10_000_000, ev.seconds * 1_000_000
            plan.burst[k] = []
            if ev.whale_before:
                trades.add(t + 5_000_000, k, notional=ev.whale_multiple * threshold, side=side)
            target = ev.notional_multiple * config.settings_of(MomentumSettings).min_notional_usd
            times, sizes = _burst(rng, target, min(BURST_CAP * threshold, target / 20), start, span)
            for ts, size in zip(times.tolist(), sizes.tolist(), strict=True):
                trades.add(ts, k, notional=size, side=side)
            plan.moves.setdefault(inst.asset.name, []).append(Interval(start, start + span, k, sign * ev.bps))
        elif isinstance(ev, BasisDislocation):
            shift = ev.bps if ev.sign == "up" else -ev.bps
            moved = Interval(t, t + ev.windows * BASIS_WINDOW_US, k, shift)
            plan.shifts.setdefault(inst.index, []).append(moved)
    return plan


def price_shift(ts: np.ndarray, intervals: list[Interval]) -> np.ndarray:
    """Per time, the bps by which basis dislocations move the instrument's prices (0 outside them)."""
    out = np.zeros(ts.shape, dtype=np.float64)
    for iv in intervals:
        out[(ts >= iv.start) & (ts < iv.end)] += iv.value
    return out


def steer(steps: np.ndarray, grid_t: np.ndarray, grid_us: int, moves: list[Interval],
          holds: list[Interval]) -> np.ndarray:  # fmt: skip
    """An asset's log-price steps on the grid ``grid_t`` with the planned moves (each spread evenly over
    its interval, so it does not depend on where the path is cut into chunks) and holds (no step)."""
    out = steps.copy()
    for iv in holds:
        out[(grid_t >= iv.start) & (grid_t < iv.end)] = 0.0
    for iv in moves:
        per_step = iv.value / 1e4 * grid_us / (iv.end - iv.start)
        out[(grid_t >= iv.start) & (grid_t < iv.end)] += per_step
    return out


def basis_pairs(config: Config, inst: Instrument, insts: list[Instrument]) -> list[tuple[str, str]]:
    """The configured MOD-005 pairs ``(a, b)`` joining ``inst`` with another instrument of ``insts``."""
    names = {f"{i.exchange}:{i.symbol}" for i in insts}
    mine = f"{inst.exchange}:{inst.symbol}"
    return [
        (a, b) for a, b in config.settings_of(BasisSettings).pairs
        if mine in (a, b) and a in names and b in names
    ]
def _burst(
    rng: np.random.Generator, target: float, cap: float, t: int, span: int
) -> tuple[np.ndarray, np.ndarray]:
    """Times and USD sizes of extra trades adding up to about ``target``, each in ``[0.3 cap, cap]``."""
    sizes = rng.uniform(0.3 * cap, cap, size=int(target / (0.3 * cap)) + 2)
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), target)) + 1]
    times = np.sort(rng.integers(t, t + span, size=sizes.size))
    return times, sizes


def crash_multiplier(ts: np.ndarray, crashes: list[tuple[int, FlashCrash]]) -> np.ndarray:
    """The factor a flash crash applies to the price path at times ``ts`` (1 outside crashes)."""
    out = np.ones(ts.shape, dtype=np.float64)
    for start, ev in crashes:
        fall = ev.minutes * MINUTE_US
        back = ev.recover_minutes * MINUTE_US
        x = (ts - start).astype(np.float64)
        shape = np.where(x < fall, x / fall, 1.0 - (x - fall) / back)
        shape = np.where((x >= 0) & (x < fall + back), shape, 0.0)
        out *= np.exp(np.log1p(-ev.drop_pct / 100.0) * shape)
    return out


def drift_log(ts: np.ndarray, drifts: list[tuple[int, float, int]]) -> np.ndarray:
    """What informed whales add to the log price path at times ``ts``: each ramps its bps in over its
    span from its start and keeps it."""
    out = np.zeros(ts.shape, dtype=np.float64)
    for start, bps, span in drifts:
        out += np.clip((ts - start) / span, 0.0, 1.0) * np.log1p(bps / 1e4)
    return out


def labels_and_faults(plan: Plan, config: Config) -> tuple[list[Label], dict[str, list[dict[str, object]]]]:
    """The labels of every plan entry and the replay fault spec, once the rows' ids are known."""
    labels: list[Label] = []
    late: list[dict[str, object]] = []
    dq = config.settings_of(DataQualitySettings)
    for k, (ev, inst, t) in enumerate(plan.events):
        ids = tuple(plan.ids.get(k, ()))
        common = {"exchange": inst.exchange, "symbol": inst.symbol}
        window_end = t + MINUTE_US
        if isinstance(ev, Whale):
            ts = t + 7_000_000
            labels.append(
                Label(
                    kind="whale",
                    detector="MOD-001",
                    start_us=ts,
                    end_us=ts,
                    event_ids=ids,
                    tolerates=("MOD-002", *_enabled(config, "MOD-006")),
                    note=f"{ev.side} {ev.multiple} x the {threshold_usd(config, inst.symbol):,.0f} "
                    "USD threshold",
                    **common,
                )
            )
            labels += _natural_impact(config, inst, ts, ids)
        elif isinstance(ev, (WhaleImpact, MomentumBurst)):
            labels += market_labels(plan, config, k)
        elif isinstance(ev, (VolumeSpike, FlashCrash)):
            top = tuple(i for _, i in sorted(plan.burst.get(k, []), key=lambda p: -p[0])[:50])
            end = t + ev.minutes * MINUTE_US
            if isinstance(ev, VolumeSpike):
                labels.append(
                    Label(
                        kind="volume_spike",
                        detector="MOD-002",
                        start_us=t,
                        end_us=end,
                        event_ids=top,
                        note=f"{ev.multiple} x the expected notional for {ev.minutes} min",
                        **common,
                    )
                )
            else:
                note = f"price -{ev.drop_pct} % over {ev.minutes} min, back over {ev.recover_minutes} min"
                # heavy one-sided selling: the medium tier's flow modules may see it too, and the large
                # tier's MOD-009 a momentum burst (a crash is one)
                flow = _enabled(config, "MOD-006", "MOD-007", "MOD-009")
                labels.append(
                    Label(
                        kind="flash_crash",
                        detector="MOD-002",
                        start_us=t,
                        end_us=end,
                        event_ids=top,
                        note=note,
                        tolerates=flow,
                        **common,
                    )
                )
                labels.append(
                    Label(
                        kind="flash_crash",
                        detector="MOD-003",
                        start_us=t,
                        end_us=end,
                        event_ids=ids[:50],
                        note=note,
                        tolerates=flow,
                        **common,
                    )
                )
        elif isinstance(ev, OneSided):
            top = tuple(i for _, i in sorted(plan.burst.get(k, []), key=lambda p: -p[0])[:50])
            labels.append(
                Label(
                    kind="one_sided",
                    detector="MOD-006",
                    start_us=t,
                    end_us=window_end,
                    event_ids=top,
                    tolerates=("MOD-002", "MOD-007"),
                    note=f"extra taker {ev.side}s: {ev.multiple} x the expected minute notional",
                    **common,
                )
            )
        elif isinstance(ev, SlicedWhale):
            first = t + 7_000_000
            labels.append(
                Label(
                    kind="sliced_whale",
                    detector="MOD-007",
                    start_us=first,
                    end_us=first + (ev.slices - 1) * ev.gap_ms * 1_000,
                    event_ids=ids[:50],
                    tolerates=("MOD-002", "MOD-006"),
                    note=f"{ev.side} {ev.multiple} x the {threshold_usd(config, inst.symbol):,.0f} USD "
                    f"threshold in {ev.slices} slices {ev.gap_ms} ms apart",
                    **common,
                )
            )
            labels += _natural_impact(config, inst, first + (ev.slices - 1) * ev.gap_ms * 1_000, ids[:50])
        elif isinstance(ev, SpreadBlowout):
            labels.append(
                Label(
                    kind="spread_blowout",
                    detector="MOD-003",
                    start_us=t,
                    end_us=t + ev.minutes * MINUTE_US,
                    event_ids=ids[:50],
                    note=f"spread {ev.spread_bps} bps for {ev.minutes} min",
                    **common,
                )
            )
        elif isinstance(ev, CrossedBook):
            labels.append(
                Label(
                    kind="crossed_book",
                    detector="MOD-003",
                    start_us=t,
                    end_us=window_end,
                    event_ids=ids,
                    **common,
                )
            )
            labels.append(
                Label(
                    kind="crossed_book",
                    detector="MOD-004",
                    expect="dq",
                    reason="CROSSED_BOOK",
                    count=ev.count,
                    start_us=t,
                    end_us=window_end,
                    event_ids=ids,
                    **common,
                )
            )
        elif isinstance(ev, FeedGap):
            gap_end = t + 5_000_000 + ev.seconds * 1_000_000
            end = (gap_end + HEARTBEAT_US) // MINUTE_US * MINUTE_US + MINUTE_US
            labels.append(
                Label(
                    kind="feed_gap",
                    detector="MOD-004",
                    expect="dq",
                    reason="STALE_FEED",
                    count=len(ids),
                    start_us=t,
                    end_us=end,
                    event_ids=ids,
                    note=f"no trade or quote for {ev.seconds} s (>= {dq.stale_feed_seconds} s); "
                    "event_ids end the gap, one per kind",
                    **common,
                )
            )
        elif isinstance(ev, Duplicate):
            labels.append(
                Label(
                    kind="duplicate",
                    detector="MOD-004",
                    expect="dq",
                    reason="DUPLICATE_ID",
                    count=ev.count,
                    start_us=t,
                    end_us=window_end,
                    event_ids=ids[:1],
                    **common,
                )
            )
        elif isinstance(ev, TradeIdGap):
            labels.append(
                Label(
                    kind="trade_id_gap",
                    detector="MOD-004",
                    expect="dq",
                    reason="TRADE_ID_GAP",
                    count=ev.missing,
                    start_us=t,
                    end_us=window_end,
                    event_ids=ids,
                    note="event_ids: the trade after the gap",
                    **common,
                )
            )
        elif isinstance(ev, Malformed):
            labels.append(
                Label(
                    kind="malformed",
                    detector="MOD-004",
                    expect="dq",
                    reason=_BAD_REASON[ev.problem],
                    count=ev.count,
                    start_us=t,
                    end_us=window_end,
                    event_ids=ids[:1],
                    note=f"corrupted copies ({ev.problem}) of the trade named; quarantined",
                    **common,
                )
            )
        elif isinstance(ev, BasisDislocation):
            for a, b in basis_pairs(config, inst, plan.instruments):
                labels.append(
                    Label(
                        kind="basis_dislocation",
                        detector="MOD-005",
                        exchange=f"{a.partition(':')[0]}|{b.partition(':')[0]}",
                        symbol=inst.asset.name,
                        start_us=t,
                        end_us=t + ev.windows * BASIS_WINDOW_US,
                        note=f"{inst.exchange}:{inst.symbol} {ev.sign} {ev.bps} bps for {ev.windows} "
                        f"windows of 10 s (pair {a} / {b})",
                    )
                )
        elif isinstance(ev, LateEvent):
            for eid in ids:
                late.append({"event_id": eid, "delay_ms": ev.delay_ms})
            is_late = ev.delay_ms > config.spark.watermark_seconds * 1000 + HEARTBEAT_US // 1000
            labels.append(
                Label(
                    kind=ev.kind,
                    detector="MOD-004",
                    expect="dq" if is_late else "none",
                    reason="LATE_EVENT" if is_late else None,
                    count=ev.count if is_late else None,
                    start_us=t,
                    end_us=window_end,
                    event_ids=ids,
                    note=f"delivered {ev.delay_ms} ms late by the replay",
                    **common,
                )
            )
    faults = {"late": late} if late else {}
    return labels, faults


def _natural_impact(config: Config, inst: Instrument, ts: int, ids: tuple[str, ...]) -> list[Label]:
    """Where MOD-008 runs, a whale of the other scenarios is measured too, and the natural price path may
    move 20 bps in minutes: its impact alerts are tolerated, neither asked for nor false."""
    if not config.enabled("MOD-008"):
        return []
    horizons = config.settings_of(WhaleImpactSettings).horizons_s
    return [
        Label(
            kind="whale_impact",
            detector="MOD-008",
            expect="none",
            exchange=inst.exchange,
            symbol=inst.symbol,
            start_us=ts + horizons[0] * 1_000_000,
            end_us=ts + horizons[-1] * 1_000_000,
            event_ids=ids,
            tolerates=("MOD-008",),
            note="the natural price after a whale of another scenario",
        )
    ]


def market_labels(plan: Plan, config: Config, k: int) -> list[Label]:
    """The labels of a ``whale_impact`` or ``momentum_burst`` entry: the whale (MOD-001), its impact
    (MOD-008: asked for after a follow-through or a burst, recorded as must-stay-silent without one) and
    the burst (MOD-009); a move of the asset shows on its other venues too, where MOD-009 is tolerated."""
    ev, inst, t = plan.events[k]
    common = {"exchange": inst.exchange, "symbol": inst.symbol}
    horizons = [h * 1_000_000 for h in config.settings_of(WhaleImpactSettings).horizons_s]
    threshold = threshold_usd(config, inst.symbol)
    labels: list[Label] = []
    if isinstance(ev, WhaleImpact):
        ts, ids, side, moved = t + 7_000_000, tuple(plan.ids.get(k, ())), ev.side, ev.follow_bps > 0
        span = (ts, ts + 1_000_000 + ev.ramp_s * 1_000_000 + horizons[-1])
        note = f"{side} {ev.multiple} x the {threshold:,.0f} USD threshold, " + (
            f"then the price follows {ev.follow_bps} bps over {ev.ramp_s} s" if moved
            else "then the price stays flat past the last horizon"
        )
    else:
        assert isinstance(ev, MomentumBurst)
        side = "buy" if ev.direction == "up" else "sell"
        burst = plan.burst.get(k, [])
        whale_ids = tuple(i for n, i in burst if n >= threshold)
        ts, ids, moved = t + 5_000_000, whale_ids, True
        start = t + 10_000_000
        lookback = config.settings_of(MomentumSettings).lookback_s * 1_000_000
        span = (start, start + ev.seconds * 1_000_000 + lookback)
        top = tuple(i for n, i in sorted(burst, key=lambda p: -p[0]) if n < threshold)[:50]
        note = f"price {ev.direction} {ev.bps} bps over {ev.seconds} s on {ev.notional_multiple} x "
        note += "MOD-009's notional floor, " + ("after a whale" if ev.whale_before else "no whale before")
        labels.append(
            Label(
                kind="momentum_burst", detector="MOD-009", start_us=span[0], end_us=span[1], event_ids=top,
                tolerates=("MOD-002", "MOD-006", "MOD-007", "MOD-008"), note=note, **common,
            )
        )  # fmt: skip
        # the burst's own fills may add up to a sliced whale (tolerated above), whose impact is measured
        labels.append(
            Label(
                kind="burst_flow_impact", detector="MOD-008", expect="none", start_us=start + horizons[0],
                end_us=span[1] + horizons[-1], tolerates=("MOD-008",), note="a sliced whale in the burst",
                **common,
            )
        )  # fmt: skip
        if not ev.whale_before:
            return labels + _venues(plan, k, span, own=False)
    labels.append(
        Label(
            kind="whale", detector="MOD-001", start_us=ts, end_us=ts, event_ids=ids[:1],
            tolerates=("MOD-002", "MOD-006", "MOD-009"), note=note, **common,
        )
    )  # fmt: skip
    labels.append(
        Label(
            kind="whale_impact" if moved else "whale_no_impact", detector="MOD-008",
            expect="alert" if moved else "none", start_us=ts + horizons[0], end_us=ts + horizons[-1],
            event_ids=ids[:1], tolerates=("MOD-009",), note=note, **common,
        )
    )  # fmt: skip
    return labels + (_venues(plan, k, span, own=isinstance(ev, WhaleImpact)) if moved else [])


def _venues(plan: Plan, k: int, span: tuple[int, int], *, own: bool) -> list[Label]:
    """MOD-009 tolerated over ``span`` on every venue of the moved asset (the move is the asset's), the
    event's own instrument included when ``own``."""
    _, inst, _ = plan.events[k]
    return [
        Label(
            kind="asset_move",
            detector="MOD-009",
            expect="none",
            exchange=other.exchange,
            symbol=other.symbol,
            start_us=span[0],
            end_us=span[1],
            tolerates=("MOD-009",),
            note=f"the asset moved with {inst.exchange}:{inst.symbol}",
        )
        for other in plan.instruments
        if other.asset.name == inst.asset.name and (own or other.index != inst.index)
    ]


def _enabled(config: Config, *modules: str) -> tuple[str, ...]:
    """Those of ``modules`` the generating tier switches on: a label tolerates a module's alerts only
    where that module runs, so the small tier's tapes keep their bytes."""
    return tuple(m for m in modules if config.enabled(m))


def quote_id(inst: Instrument, update_id: int) -> str:
    """The event id of one of the instrument's quotes."""
    return event_id("quote", inst.exchange, inst.symbol, update_id)


def trade_id(inst: Instrument, tid: int) -> str:
    """The event id of one of the instrument's trades."""
    return event_id("trade", inst.exchange, inst.symbol, tid)
