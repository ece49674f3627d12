"""Historical days on demand: download files from the public exchange archives into a verified cache.

One module per archive (``binance``, ``tardis``) describing where each day's file lives and how it is
verified; the shared parts in ``base`` (what a file to fetch is, the errors), ``http`` (ranged, retried
downloads), ``cache`` (the local store) and ``fetcher`` (planning, parallel downloads, then the import).
"""

from replay.fetch.base import ChecksumMismatch, FetchError, NotInArchive, Remote
from replay.fetch.cache import Cache, CacheEntry
from replay.fetch.dayspec import DaySpec, parse_day_spec
from replay.fetch.fetcher import FetchRequest, FetchResult, fetch, fetch_tape, plan
from replay.fetch.settings import FetchSettings

__all__ = [
    "Cache",
    "CacheEntry",
    "ChecksumMismatch",
    "DaySpec",
    "FetchError",
    "FetchRequest",
    "FetchResult",
    "FetchSettings",
    "NotInArchive",
    "Remote",
    "fetch",
    "fetch_tape",
    "parse_day_spec",
    "plan",
]
