"""``coattail diff RUN_A RUN_B``: which alerts appeared, vanished or changed between two runs.

Alerts are matched by ``alert_id`` (a function of what fired, never of when it was computed), so the
same tape under two configurations or two builds lines up alert by alert. A matched alert has changed
when its severity, value, threshold, window or evidence differ (floats within a relative 1e-9 are
equal). Results are grouped by detector and symbol: what a user checks before promoting a change.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Final

from coattail.run.outputs import RunOutputs
from coattail.validate.agreement import close, same_json
from coattail.validate.alert_view import parse_evidence

COMPARED: Final = (
    "kind",
    "ts_event",
    "window_start",
    "window_end",
    "severity",
    "value",
    "threshold",
    "evidence",
)


@dataclass(frozen=True)
class GroupDiff:
    """The differences of one ``(detector, symbol)``."""

    detector: str
    exchange: str
    symbol: str
    appeared: list[dict[str, Any]] = field(default_factory=list)
    vanished: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0


@dataclass(frozen=True)
class RunDiff:
    """Every group with a difference, plus totals."""

    a: str
    b: str
    groups: list[GroupDiff]
    alerts_a: int
    alerts_b: int

    @property
    def empty(self) -> bool:
        """True when the runs' alerts are the same."""
        return all(not (g.appeared or g.vanished or g.changed) for g in self.groups)

    def totals(self) -> dict[str, int]:
        """How many alerts appeared, vanished, changed and stayed the same."""
        return {
            "appeared": sum(len(g.appeared) for g in self.groups),
            "vanished": sum(len(g.vanished) for g in self.groups),
            "changed": sum(len(g.changed) for g in self.groups),
            "unchanged": sum(g.unchanged for g in self.groups),
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (groups without differences left out)."""
        return {
            "a": self.a,
            "b": self.b,
            "alerts_a": self.alerts_a,
            "alerts_b": self.alerts_b,
            "totals": self.totals(),
            "groups": [
                {
                    "detector": g.detector,
                    "exchange": g.exchange,
                    "symbol": g.symbol,
                    "appeared": g.appeared,
                    "vanished": g.vanished,
                    "changed": g.changed,
                    "unchanged": g.unchanged,
                }
                for g in self.groups
                if g.appeared or g.vanished or g.changed
            ],
        }


def diff_outputs(a: RunOutputs, b: RunOutputs, *, name_a: str = "A", name_b: str = "B") -> RunDiff:
    """Compare the alerts of two runs."""
    alerts_a = {r["alert_id"]: r for r in a.alert_rows()}
    alerts_b = {r["alert_id"]: r for r in b.alert_rows()}
    buckets: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(
        lambda: {"appeared": [], "vanished": [], "changed": [], "unchanged": 0}
    )
    for aid in alerts_a.keys() | alerts_b.keys():
        row = alerts_b.get(aid) or alerts_a[aid]
        bucket = buckets[(row["detector"], row["exchange"], row["symbol"])]
        if aid not in alerts_a:
            bucket["appeared"].append(_brief(alerts_b[aid]))
        elif aid not in alerts_b:
            bucket["vanished"].append(_brief(alerts_a[aid]))
        else:
            fields = _changed_fields(alerts_a[aid], alerts_b[aid])
            if fields:
                bucket["changed"].append({**_brief(alerts_b[aid]), "fields": fields})
            else:
                bucket["unchanged"] += 1
    groups = [
        GroupDiff(
            detector=d,
            exchange=e,
            symbol=s,
            appeared=sorted(v["appeared"], key=_order),
            vanished=sorted(v["vanished"], key=_order),
            changed=sorted(v["changed"], key=_order),
            unchanged=v["unchanged"],
        )
        for (d, e, s), v in sorted(buckets.items())
    ]
    return RunDiff(a=name_a, b=name_b, groups=groups, alerts_a=len(alerts_a), alerts_b=len(alerts_b))


def _changed_fields(a: dict[str, Any], b: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in COMPARED:
        x, y = a[name], b[name]
        if name == "evidence":
            x, y = parse_evidence(x), parse_evidence(y)
            equal = same_json(x, y)
        else:
            equal = close(x, y)
        if not equal:
            out[name] = {"a": x, "b": y}
    return out


def _brief(alert: dict[str, Any]) -> dict[str, Any]:
    keys = ("alert_id", "kind", "ts_event", "severity", "value", "threshold")
    return {k: alert[k] for k in keys}


def _order(row: dict[str, Any]) -> tuple[int, str]:
    return int(row["ts_event"]), str(row["alert_id"])
