"""Which way an alert points: the one place that reads a direction out of another module's alert.

docs/DETECTORS.md, "MOD-011", Observations. MOD-011 (alpha scoring) follows an alert only when it says
which way the price should go; each module's alert carries that fact differently, so the rule for each
module id lives here and nowhere else:

- MOD-001 whale trade and MOD-007 sliced whale: the taker's side (evidence ``side``), ``buy`` +1,
  ``sell`` -1.
- MOD-006 flow imbalance: the dominant side (evidence ``direction``), ``buy`` +1, ``sell`` -1.
- MOD-009 momentum burst: ``kind = "momentum_burst"``, the sign of ``value`` (0: none).
- MOD-010 on-chain whale: ``kind`` ``exchange_inflow`` / ``exchange_outflow`` / ``whale_transfer`` with
  the configured stance of the transfer's asset (evidence ``asset``), its decision time the transfer's
  ``ts_recv`` (evidence) and its source the wallet that is not the exchange's: ``to_addr`` for an
  outflow, else ``from_addr`` (``wallet_of``).

Anything else has no direction (0) and is not an observation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

_SIDES: Final = {"buy": 1, "sell": -1}
ONCHAIN_KINDS: Final = ("exchange_inflow", "exchange_outflow", "whale_transfer")
DEFAULT_STANCE: Final = {"exchange_inflow": -1, "exchange_outflow": 1, "whale_transfer": 0}
"""A volatile asset moved onto an exchange is for sale (-1), off it is held (+1)."""
STABLE_STANCE: Final = {"exchange_inflow": 1, "exchange_outflow": -1, "whale_transfer": 0}
"""Stablecoins moved onto an exchange are buying power for the configured market (+1)."""


@dataclass(frozen=True)
class Direction:
    """What an alert says: ``sign`` (+1 up, -1 down, 0 nothing to follow), the decision time when it is
    not the alert's own (``None``: use it), and the source's owner when it is not the instrument."""

    sign: int
    decision_ts: int | None = None
    source: str | None = None


@dataclass(frozen=True)
class Stance:
    """MOD-010's stances: per asset, per transfer kind, the direction it implies (+1, -1 or 0);
    ``stablecoins`` (config/tokens.yaml's) take ``STABLE_STANCE`` where none is configured."""

    per_asset: Mapping[str, Mapping[str, int]]
    stablecoins: frozenset[str]

    def of(self, asset: str, kind: str) -> int:
        """The configured direction of a transfer of ``asset``; the defaults where none is configured."""
        default = STABLE_STANCE if asset in self.stablecoins else DEFAULT_STANCE
        return int(self.per_asset.get(asset, {}).get(kind, default.get(kind, 0)))


AlertRow = Any
"""One alert, as a ``pandas`` ``itertuples`` row (attributes named after ``ALERT_SCHEMA``)."""


def _side(field: str) -> Callable[[AlertRow, Stance], Direction]:
    def read(alert: AlertRow, _stance: Stance) -> Direction:
        return Direction(_SIDES.get(str(json.loads(alert.evidence).get(field, "")), 0))
    return read


def _burst(alert: AlertRow, _stance: Stance) -> Direction:
    if alert.kind != "momentum_burst":
        return Direction(0)
    value = float(alert.value)
    return Direction(1 if value > 0 else -1 if value < 0 else 0)


def wallet_of(kind: str, evidence: Mapping[str, Any]) -> str:
    """The whale's wallet of a MOD-010 alert: the receiver of an exchange outflow, else the sender (an
    inflow's depositor, a whale transfer's payer)."""
    return str(evidence["to_addr"] if kind == "exchange_outflow" else evidence["from_addr"])


def _onchain(alert: AlertRow, stance: Stance) -> Direction:
    if alert.kind not in ONCHAIN_KINDS:
        return Direction(0)
    evidence = json.loads(alert.evidence)
    kind = str(alert.kind)
    return Direction(
        stance.of(str(evidence["asset"]), kind),
        decision_ts=int(evidence["ts_recv"]),
        source=wallet_of(kind, evidence),
    )


EXTRACTORS: Final[dict[str, Callable[[AlertRow, Stance], Direction]]] = {
    "MOD-001": _side("side"),
    "MOD-006": _side("direction"),
    "MOD-007": _side("side"),
    "MOD-009": _burst,
    "MOD-010": _onchain,
}
"""The modules whose alerts can be followed, by id."""


def direction_of(alert: AlertRow, stance: Stance) -> Direction:
    """The direction of one alert (``Direction(0)`` for a module without one)."""
    read = EXTRACTORS.get(str(alert.detector))
    return read(alert, stance) if read is not None else Direction(0)
