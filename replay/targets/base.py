"""The target base class: lifecycle, counting and target-side disturbances; backends implement ``_send``.

A target receives arrival-ordered Arrow tables (``replay.faults.ARRIVAL_SCHEMA``) together with the
wall-clock time (µs) at which the replay handed them over, which becomes each record's ``ts_sent``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType

import pyarrow as pa

from replay.faults import Disturbance


class Target(ABC):
    """Where replayed events go."""

    name: str = "target"

    def __init__(self) -> None:
        self.sent = 0
        self._disturbances: list[Disturbance] = []
        self.applied: list[tuple[Disturbance, int]] = []
        """Disturbances this target applied, with the exchange time of the event they came after."""

    def schedule(self, disturbances: list[Disturbance]) -> None:
        """Throttling bursts and disconnects to apply once ``at_event`` events have been sent."""
        self._disturbances = sorted(disturbances, key=lambda d: d.at_event)

    def open(self) -> None:  # noqa: B027 (an optional hook)
        """Acquire connections; called once before the first ``send``."""

    def close(self) -> None:  # noqa: B027 (an optional hook)
        """Flush and release; called once after the last ``send`` (also after an error)."""

    def send(self, table: pa.Table, ts_sent: int) -> None:
        """Hand a group of events to the backend, applying any disturbance due within it."""
        offset = 0
        while self._disturbances and self._disturbances[0].at_event < self.sent + table.num_rows - offset:
            d = self._disturbances.pop(0)
            cut = max(d.at_event - self.sent, 0) + offset
            if cut > offset:
                self._send(table.slice(offset, cut - offset), ts_sent)
                self.sent += cut - offset
                offset = cut
            if self._disturb(d):
                last = table.column("ts_event")[max(offset - 1, 0)].as_py()
                self.applied.append((d, int(last)))
        if offset < table.num_rows:
            self._send(table.slice(offset), ts_sent)
            self.sent += table.num_rows - offset

    @abstractmethod
    def _send(self, table: pa.Table, ts_sent: int) -> None:
        """Deliver the rows; raise ``TargetError`` when the backend refuses them for good."""

    def _disturb(self, disturbance: Disturbance) -> bool:
        """Apply a target-side fault; return False when this backend has no such fault."""
        return False

    def __enter__(self) -> Target:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
