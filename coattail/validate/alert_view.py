"""How validation, agreement and diff show one alert to a person: its key fields and parsed evidence."""

from __future__ import annotations

import json
from typing import Any, Final

SHOWN_FIELDS: Final = (
    "alert_id",
    "detector",
    "kind",
    "exchange",
    "symbol",
    "ts_event",
    "severity",
    "value",
    "threshold",
)


def parse_evidence(text: Any) -> Any:
    """The evidence JSON as an object; text that is not JSON is returned as it is."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def alert_view(alert: dict[str, Any]) -> dict[str, Any]:
    """The alert's shown fields plus its evidence, parsed."""
    return {**{k: alert[k] for k in SHOWN_FIELDS}, "evidence": parse_evidence(alert["evidence"])}
