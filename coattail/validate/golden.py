"""Golden alert files: the canonical alerts of a fixture tape, compared on content.

A golden file is canonical JSON: a list of alerts with the fields of ``GOLDEN_FIELDS``, sorted by
``(detector, exchange, symbol, ts_event, alert_id)``, ``value`` rounded to ``VALUE_DIGITS`` significant
digits, keys sorted, two-space indent. It is written only by ``coattail golden update``; a run is
compared with it by ``coattail validate RUN --golden FILE``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from core.errors import ValidationFailed

GOLDEN_FIELDS: Final = ("alert_id", "detector", "kind", "exchange", "symbol", "ts_event", "severity", "value")
VALUE_DIGITS: Final = 9


def canonical_alerts(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The golden form of a run's alerts."""
    rows = [
        {**{k: a[k] for k in GOLDEN_FIELDS}, "value": float(f"{float(a['value']):.{VALUE_DIGITS}g}")}
        for a in alerts
    ]
    return sorted(
        rows, key=lambda r: (r["detector"], r["exchange"], r["symbol"], r["ts_event"], r["alert_id"])
    )


def dumps(rows: list[dict[str, Any]]) -> str:
    """Canonical JSON text (stable across runs, so files diff cleanly)."""
    return json.dumps(rows, sort_keys=True, indent=2) + "\n"


def write_golden(path: Path, alerts: list[dict[str, Any]]) -> int:
    """Write the golden file of ``alerts``; returns how many alerts it holds."""
    rows = canonical_alerts(alerts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(rows))
    return len(rows)


def read_golden(path: Path) -> list[dict[str, Any]]:
    """Read a golden file; a missing or malformed one says what to do."""
    if not path.is_file():
        raise ValidationFailed(f"golden file {path} does not exist; create it with `coattail golden update`")
    try:
        rows = json.loads(path.read_text())
    except ValueError as e:
        raise ValidationFailed(
            f"{path}: not valid JSON ({e}); regenerate it with `coattail golden update`"
        ) from e
    if not isinstance(rows, list) or any(
        not isinstance(r, dict) or set(r) != set(GOLDEN_FIELDS) for r in rows
    ):
        raise ValidationFailed(
            f"{path}: expected a list of alerts with exactly the fields {list(GOLDEN_FIELDS)}"
        )
    return rows


@dataclass(frozen=True)
class GoldenComparison:
    """How a run's alerts differ from a golden file."""

    path: str
    expected: int
    actual: int
    missing: list[dict[str, Any]] = field(default_factory=list)
    unexpected: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the contents are equal."""
        return not (self.missing or self.unexpected or self.changed)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {**asdict(self), "ok": self.ok}


def compare_golden(path: Path, alerts: list[dict[str, Any]]) -> GoldenComparison:
    """Compare ``alerts`` with the golden file at ``path``, alert by alert, field by field."""
    expected = {r["alert_id"]: r for r in read_golden(path)}
    actual = {r["alert_id"]: r for r in canonical_alerts(alerts)}
    changed = []
    for aid in sorted(expected.keys() & actual.keys()):
        fields = {
            k: {"golden": expected[aid][k], "run": actual[aid][k]}
            for k in GOLDEN_FIELDS
            if expected[aid][k] != actual[aid][k]
        }
        if fields:
            changed.append({"alert_id": aid, "fields": fields})
    return GoldenComparison(
        path=str(path),
        expected=len(expected),
        actual=len(actual),
        missing=[expected[a] for a in sorted(expected.keys() - actual.keys())],
        unexpected=[actual[a] for a in sorted(actual.keys() - expected.keys())],
        changed=changed,
    )
