"""``Frozen``: the base of every typed model the project reads from a file (config, manifests, labels)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """Immutable, and an unknown key is an error (a typo in a file must not pass unnoticed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
