"""Fetch settings: archive base URLs, the cache, parallelism and retries (typed, frozen, no unknown keys).

Read from the environment as ``COATTAIL_FETCH__<KEY>`` (``COATTAIL_FETCH__BINANCE_URL=http://mirror``),
then overridden by command-line options. The Tardis API key is read from ``TARDIS_API_KEY`` and held as
a secret, so printing the settings never shows it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr

from core.frozen import Frozen

# _parse turns pydantic's errors into the one-line ConfigError every config model gives
from pipeline.config import parse_model

ENV_PREFIX = "COATTAIL_FETCH__"
TARDIS_KEY_ENV = "TARDIS_API_KEY"


class FetchSettings(Frozen):
    """Where the archives are, where downloads are kept and how hard to try."""

    binance_url: str = "https://data.binance.vision"
    tardis_url: str = "https://datasets.tardis.dev"
    tardis_api_key: SecretStr | None = None
    cache_dir: Path = Path.home() / ".cache" / "coattail" / "archives"
    cache_max_bytes: int = Field(50 * 2**30, gt=0)
    parallel: int = Field(4, ge=1, le=32)
    retries: int = Field(4, ge=0)
    backoff_seconds: float = Field(0.5, ge=0)
    timeout_seconds: float = Field(60.0, gt=0)

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> FetchSettings:
        """Defaults < ``COATTAIL_FETCH__*`` and ``TARDIS_API_KEY`` < ``overrides`` (None values ignored)."""
        env = os.environ if env is None else env
        raw: dict[str, Any] = {
            k[len(ENV_PREFIX) :].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)
        }
        if env.get(TARDIS_KEY_ENV):
            raw["tardis_api_key"] = env[TARDIS_KEY_ENV]
        raw.update({k: v for k, v in overrides.items() if v is not None})
        return parse_model(cls, raw, Path(f"fetch settings ({ENV_PREFIX}*, {TARDIS_KEY_ENV} or options)"))
