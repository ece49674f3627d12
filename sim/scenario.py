"""Scenario files: which events a synthetic tape gets injected, and where.

A scenario is a YAML file (presets in ``sim/scenarios/``)::

    name: whale-day
    description: ...
    events:
      - {kind: whale, at: 0.2, instrument: 0, multiple: 1.5, side: buy}
      - {kind: volume_spike, at: 0.05, instrument: 1, minutes: 2, multiple: 8}

``at`` is a fraction of the usable span of the tape, so one file fits any duration: the span starts
16 minutes after the start (the windowed detectors need history) and ends 3 minutes plus the event's
length before the end (windows still open at the end are never evaluated). ``instrument`` indexes the
instruments in ``--symbols`` x ``--exchanges`` order, modulo their number, so presets work with any set.
Event kinds and their parameters are the models below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import ConfigError

PRESET_DIR = Path(__file__).resolve().parent / "scenarios"
HEAD_US = 16 * 60_000_000
TAIL_US = 3 * 60_000_000


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at: float = Field(ge=0.0, le=1.0)
    instrument: int = Field(0, ge=0)

    def length_us(self) -> int:
        """How long the event lasts (its span must fit before the tape's tail)."""
        return 60_000_000


class Whale(_Event):
    """One trade of ``multiple`` times the symbol's MOD-001 threshold. An informed whale (``drift_bps``
    above 0) moves the asset's price path ``drift_bps`` its way over ``drift_seconds`` after it, for good:
    the planted edge MOD-011 must find."""

    kind: Literal["whale"]
    multiple: float = Field(2.0, ge=1.05)
    side: Literal["buy", "sell"] = "buy"
    drift_bps: float = Field(0.0, ge=0.0, le=500.0)
    drift_seconds: int = Field(120, ge=1, le=3600)

    def length_us(self) -> int:
        return max(60_000_000, 7_000_000 + self.drift_seconds * 1_000_000) if self.drift_bps else 60_000_000


class VolumeSpike(_Event):
    """``minutes`` whole windows whose notional is ``multiple`` times the expected (extra trades)."""

    kind: Literal["volume_spike"]
    minutes: int = Field(2, ge=1, le=10)
    multiple: float = Field(8.0, ge=4.0)

    def length_us(self) -> int:
        return (self.minutes + 1) * 60_000_000


class SpreadBlowout(_Event):
    """Quotes whose spread is ``spread_bps`` for ``minutes`` whole windows."""

    kind: Literal["spread_blowout"]
    minutes: int = Field(2, ge=1, le=10)
    spread_bps: float = Field(25.0, gt=0)

    def length_us(self) -> int:
        return (self.minutes + 1) * 60_000_000


class CrossedBook(_Event):
    """``count`` quotes with the bid above the ask."""

    kind: Literal["crossed_book"]
    count: int = Field(3, ge=1, le=1000)


class FeedGap(_Event):
    """No trade or quote of the instrument for ``seconds``."""

    kind: Literal["feed_gap"]
    seconds: int = Field(45, ge=35, le=3600)

    def length_us(self) -> int:
        return (self.seconds + 60) * 1_000_000


class Duplicate(_Event):
    """A trade repeated ``count`` more times (same id and content)."""

    kind: Literal["duplicate"]
    count: int = Field(3, ge=1, le=1000)


class TradeIdGap(_Event):
    """``missing`` trade ids skipped."""

    kind: Literal["trade_id_gap"]
    missing: int = Field(5, ge=1, le=1_000_000)


class Malformed(_Event):
    """``count`` corrupted copies of a trade: price or size not positive, or a side that is not one."""

    kind: Literal["malformed"]
    count: int = Field(2, ge=1, le=1000)
    problem: Literal["price", "size", "side"] = "price"


class LateEvent(_Event):
    """``count`` quotes that the replay delivers ``delay_ms`` late (a fault, the rows stay in order).

    With a delay beyond the watermark they are late (``LATE_EVENT``); within it they are only
    reordered and must not be counted (``out_of_order``).
    """

    kind: Literal["late_event", "out_of_order"]
    count: int = Field(2, ge=1, le=1000)
    delay_ms: int = Field(45_000, ge=1)


class FlashCrash(_Event):
    """The asset's price falls ``drop_pct`` over ``minutes`` on heavy selling with wide spreads, then
    recovers over ``recover_minutes``; volume and spreads only on the chosen instrument."""

    kind: Literal["flash_crash"]
    drop_pct: float = Field(8.0, gt=0, lt=18)
    minutes: int = Field(2, ge=1, le=10)
    recover_minutes: int = Field(10, ge=1, le=120)
    multiple: float = Field(10.0, ge=4.0)
    spread_bps: float = Field(40.0, gt=0)

    def length_us(self) -> int:
        return (self.minutes + self.recover_minutes) * 60_000_000


class BasisDislocation(_Event):
    """The instrument's prices (trades and quotes) move ``bps`` up or down against the asset's other
    venues for ``windows`` whole 10-second windows, then come back: a basis episode (MOD-005) for every
    configured pair that joins it with another instrument of the tape."""

    kind: Literal["basis_dislocation"]
    windows: int = Field(6, ge=1, le=360)
    bps: float = Field(60.0, gt=0, le=1000)
    sign: Literal["up", "down"] = "up"

    def length_us(self) -> int:
        return self.windows * 10_000_000 + 60_000_000
class SlicedWhale(_Event):
    """A parent order of ``multiple`` x the MOD-001 threshold cut into ``slices`` same-side fills
    ``gap_ms`` apart, each below the threshold; the instrument's other trades pause around it."""

    kind: Literal["sliced_whale"]
    multiple: float = Field(1.5, ge=1.05)
    slices: int = Field(8, ge=3, le=100)
    gap_ms: int = Field(400, ge=1)
    side: Literal["buy", "sell"] = "buy"

    @model_validator(mode="after")
    def _slices_fit(self) -> Self:
        if self.multiple / self.slices >= 1.0:
            raise ValueError(
                f"{self.slices} slices of {self.multiple} x the threshold: each must stay below it"
            )
        if self.slices * self.gap_ms > 10_000:
            raise ValueError(
                "slices x gap_ms must be at most 10000 (the trade pause would look like a feed gap)"
            )
        return self


class ExchangeFlow(_Event):
    """A whale transfer on chain of ``multiple`` x the MOD-010 threshold of the instrument's asset (amount
    from the asset's price at that time): ``exchange_inflow`` to an exchange wallet (config/wallets.yaml),
    ``exchange_outflow`` from one, ``whale_transfer`` between two unlabelled wallets. ``wallet`` names the
    whale's wallet in the scenario's ``onchain.wallets``: its ``sell_after_inflow`` tendency decides
    whether selling on the asset's markets follows an inflow. Needs the asset's reference instrument
    (config/instruments.yaml) among the tape's instruments, whose trades price it.

    ``stablecoin`` (a ``stablecoins`` token of config/tokens.yaml): the transfer moves that coin instead,
    ``multiple`` x its threshold at 1 USD, and counts for the coin's configured market
    (``stablecoin_markets``), whose reference instrument must be on the tape; ``instrument`` is not
    used, and no sell-off follows it."""

    kind: Literal["exchange_inflow", "exchange_outflow", "whale_transfer"]
    multiple: float = Field(2.0, ge=1.5)
    wallet: str | None = None
    stablecoin: str | None = None


class OnchainWallet(BaseModel):
    """A whale's wallet: how often its exchange inflows precede selling (a flash crash of ``drop_pct``
    on the asset, ``lag_minutes`` after the inflow), the edge the signals module can learn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    sell_after_inflow: float = Field(0.0, ge=0.0, le=1.0)
    lag_minutes: int = Field(5, ge=1, le=120)
    drop_pct: float = Field(2.0, gt=0, lt=18)


class OnchainProcess(BaseModel):
    """The on-chain process of a scenario: ordinary transfers of every asset of the tape (Poisson,
    ``transfers_per_hour`` per asset, each worth less than 10 % of its MOD-010 threshold) and the
    whales' wallets its exchange-flow events name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chain: Literal["ethereum"] = "ethereum"
    transfers_per_hour: float = Field(60.0, ge=0.0, le=100_000.0)
    wallets: tuple[OnchainWallet, ...] = ()


class OneSided(_Event):
    """A minute of extra taker flow on one ``side``: ``multiple`` x the expected notional (at least 1.5 x
    MOD-006's ``min_notional_usd``), each trade below 10 % of the threshold."""

    kind: Literal["one_sided"]
    multiple: float = Field(10.0, ge=4.0)
    side: Literal["buy", "sell"] = "buy"


IMPACT_LENGTH_US = 7 * 60_000_000
"""The large tier's market events last long enough for MOD-008's last horizon (300 s) after a whale."""


class WhaleImpact(_Event):
    """A whale trade (``multiple`` x the MOD-001 threshold) after which the asset's price follows its side
    by ``follow_bps`` over ``ramp_s`` seconds (every venue of the asset), or, with ``follow_bps: 0``,
    stays flat until MOD-008's last horizon has passed (a whale without follow-through)."""

    kind: Literal["whale_impact"]
    multiple: float = Field(3.0, ge=1.05)
    side: Literal["buy", "sell"] = "buy"
    follow_bps: float = Field(40.0, ge=0, le=1000)
    ramp_s: int = Field(20, ge=1, le=120)

    def length_us(self) -> int:
        return IMPACT_LENGTH_US


class MomentumBurst(_Event):
    """The asset's price moves ``bps`` (``direction``) over ``seconds`` on every venue while the instrument
    trades ``notional_multiple`` x MOD-009's ``min_notional_usd`` that way; with ``whale_before`` a whale
    (``whale_multiple`` x the threshold, same side) trades 5 s before the move starts."""

    kind: Literal["momentum_burst"]
    bps: float = Field(80.0, gt=0, le=1000)
    direction: Literal["up", "down"] = "up"
    seconds: int = Field(20, ge=1, le=50)
    notional_multiple: float = Field(2.0, ge=1.2)
    whale_before: bool = False
    whale_multiple: float = Field(2.0, ge=1.05)

    def length_us(self) -> int:
        return IMPACT_LENGTH_US


ScenarioEvent = Annotated[
    Whale
    | VolumeSpike
    | SpreadBlowout
    | CrossedBook
    | FeedGap
    | Duplicate
    | TradeIdGap
    | Malformed
    | LateEvent
    | FlashCrash
    | BasisDislocation
    | SlicedWhale
    | OneSided
    | WhaleImpact
    | MomentumBurst
    | ExchangeFlow,
    Field(discriminator="kind"),
]


class Scenario(BaseModel):
    """A scenario file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    events: tuple[ScenarioEvent, ...] = ()
    onchain: OnchainProcess | None = None
    """Transfers on chain beside the market (none when absent); needed by exchange-flow events."""

    @model_validator(mode="after")
    def _flows_have_their_process(self) -> Self:
        flows = [e for e in self.events if isinstance(e, ExchangeFlow)]
        if flows and self.onchain is None:
            raise ValueError("exchange-flow events need an `onchain:` section (the on-chain process)")
        names = {w.name for w in self.onchain.wallets} if self.onchain else set()
        unknown = sorted({e.wallet for e in flows if e.wallet is not None} - names)
        if unknown:
            raise ValueError(f"events name wallets {unknown} that `onchain.wallets` does not list")
        return self


def presets() -> list[str]:
    """The names of the shipped scenarios."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_scenario(name_or_path: str) -> Scenario:
    """A preset by name (``whale-day``) or a scenario YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESET_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown scenario {name_or_path!r}; presets: {', '.join(presets())}")
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"scenario file {path} does not exist") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    try:
        return Scenario.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"{path}: {problems}") from e


def place(event: _Event, start_us: int, duration_us: int) -> int:
    """The event's start time: ``at`` across the usable span, aligned down to a whole minute."""
    usable = duration_us - HEAD_US - TAIL_US - event.length_us()
    if usable < 0:
        need = (HEAD_US + TAIL_US + event.length_us()) // 60_000_000 + 1
        raise ConfigError(
            f"duration too short for a {getattr(event, 'kind', 'scenario')} event: "
            f"use --duration {need}m or more"
        )
    t = start_us + HEAD_US + round(event.at * usable)
    return t - t % 60_000_000
