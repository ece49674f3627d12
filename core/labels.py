"""The ground truth of a synthetic tape: one ``Label`` per injected scenario (kept in its manifest)."""

from __future__ import annotations

from typing import Literal

from core.frozen import Frozen


class Label(Frozen):
    """One injected scenario: what must be detected, where, and from which events."""

    kind: str
    """Scenario kind, e.g. ``whale``, ``volume_spike``, ``spread_blowout``, ``crossed_book``,
    ``feed_gap``, ``duplicate``, ``trade_id_gap``, ``malformed``, ``late_event``, ``flash_crash``."""
    detector: str
    """The module that must react: ``MOD-001`` ... ``MOD-004``."""
    expect: Literal["alert", "dq", "none"] = "alert"
    """``alert``: at least one alert of ``detector`` in the span; ``dq``: the rule ``reason`` counts
    ``count`` events (quarantine or DQ metrics); ``none``: a replay transport fault recorded for the
    report that by itself makes no detector react (a reorder that stayed within the watermark, a
    throttling burst, a disconnect)."""
    reason: str | None = None
    """For ``expect: dq``: the data-quality reason code (docs/DETECTORS.md)."""
    count: int | None = None
    exchange: str
    symbol: str
    start_us: int
    end_us: int
    event_ids: tuple[str, ...] = ()
    note: str = ""
    tolerates: tuple[str, ...] = ()
    """Detectors whose alerts over this label's events are consistent with it without being required
    (a whale in a thin minute may also fire MOD-002): neither a miss nor a false positive."""
