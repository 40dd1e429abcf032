"""Per-key rate limits (token buckets) and the ``X-Sentry-Rate-Limits`` values ingest answers with.

Sentry SDKs read ``X-Sentry-Rate-Limits: <seconds>:<categories>:<scope>`` and stop sending those categories
for that long. Ingest uses it twice: for a key over its quota (429, categories of errors) and, on every
accepted envelope, for the categories Stackwatch never keeps, so SDKs stop spending bandwidth on them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = [
    "ERROR_CATEGORIES",
    "KEPT_ITEM_TYPES",
    "NEVER_KEPT_HEADER",
    "RateLimiter",
]

# Every other item type (transaction, span, profile, replay_*, check_in, log, unknown ones) is accepted and dropped.
KEPT_ITEM_TYPES = frozenset({"event", "attachment", "session", "sessions", "client_report"})
ERROR_CATEGORIES = "error;default;security"
# How long SDKs should hold back categories that are never kept. An hour keeps the traffic away without
# making a later upgrade that keeps them wait long.
NEVER_KEPT_HEADER = "3600:transaction;span;profile;profile_chunk;replay;monitor;log_item;metric_bucket:key"


class RateLimiter:
    """One token bucket per key: ``per_minute`` events, refilled continuously, bursts up to a minute's worth."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, per_minute: int, cost: int = 1) -> float:
        """Spend ``cost`` tokens; return 0 when allowed, else the seconds until the request would be."""
        if per_minute <= 0:
            return 0.0
        now = self._clock()
        rate = per_minute / 60.0
        tokens, stamp = self._buckets.get(key, (float(per_minute), now))
        tokens = min(float(per_minute), tokens + (now - stamp) * rate)
        if tokens >= cost:
            self._buckets[key] = (tokens - cost, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (cost - tokens) / rate

    @staticmethod
    def retry_after(wait: float) -> int:
        return max(1, math.ceil(wait))
