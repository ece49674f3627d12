"""The candidate's release notes: the alert changes it makes on purpose (``release-notes.yaml``).

Location: ``release-notes.yaml`` at the root of the candidate's checkout (absent: no change declared).
Format (docs/BENCH.md)::

    alert_changes:
      - detector: MOD-002                  # the module whose alerts change (required)
        symbols: [BTCUSDT]                 # only these symbols (default: every symbol)
        kinds: [appeared, vanished]        # which differences (default: appeared, vanished, changed)
        why: "z threshold 3 -> 3.5"        # required: the reason, for the reviewer

``coattail bench --baseline REV --gate`` diffs the candidate's alerts against the baseline's on the same
tape (``coattail diff``); every difference no entry covers is undeclared, and the tier's budget
(``budgets.max_undeclared_alert_changes``, 0) says how many may be.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

import yaml
from pydantic import Field, ValidationError

from core.errors import CoattailError
from core.frozen import Frozen

FILE: Final = "release-notes.yaml"
ChangeKind = Literal["appeared", "vanished", "changed"]


class AlertChange(Frozen):
    """One declared change of a module's alerts."""

    detector: str = Field(min_length=1)
    symbols: tuple[str, ...] = ()
    kinds: tuple[ChangeKind, ...] = ("appeared", "vanished", "changed")
    why: str = Field(min_length=1)

    def covers(self, detector: str, symbol: str, kind: ChangeKind) -> bool:
        """This entry declares a ``kind`` difference of ``detector``'s alerts on ``symbol``."""
        return (
            detector == self.detector and kind in self.kinds and (not self.symbols or symbol in self.symbols)
        )


class ReleaseNotes(Frozen):
    """The whole file."""

    alert_changes: tuple[AlertChange, ...] = ()

    def declares(self, detector: str, symbol: str, kind: ChangeKind) -> bool:
        """Some entry declares this difference."""
        return any(c.covers(detector, symbol, kind) for c in self.alert_changes)


def load_release_notes(checkout: Path) -> ReleaseNotes:
    """``checkout``'s release notes (none declared when it has no file); ``CoattailError`` naming the
    file and the problem when it is malformed."""
    path = checkout / FILE
    if not path.is_file():
        return ReleaseNotes()
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return ReleaseNotes.model_validate(data)
    except (yaml.YAMLError, ValidationError) as e:
        raise CoattailError(
            f"{path} is not valid release notes (see docs/BENCH.md for the format): {e}"
        ) from e
