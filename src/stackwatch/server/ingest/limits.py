"""Per-key rate limits (token buckets), the per-envelope attachment caps, and the ``X-Sentry-Rate-Limits`` values
ingest answers with.

Sentry SDKs read ``X-Sentry-Rate-Limits: <seconds>:<categories>:<scope>`` and stop sending those categories
for that long. Ingest uses it three times: for a key over its event quota (429, categories of errors), for a key
over its attachment quota (the ``attachment`` category: the attachments are dropped and the rest of the envelope
kept, or 429 when nothing else is left), and, on every accepted envelope, for the categories Stackwatch never
keeps, so SDKs stop spending bandwidth on them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from stackwatch.server.config import Settings
from stackwatch.server.ingest.auth import KeyInfo
from stackwatch.server.ingest.envelope import Item
from stackwatch.server.ingest.errors import IngestError
from stackwatch.server.metrics import METRICS

__all__ = [
    "ERROR_CATEGORIES",
    "KEPT_ITEM_TYPES",
    "NEVER_KEPT_HEADER",
    "AttachmentQuota",
    "RateLimiter",
    "attachment_quota",
    "check_attachment_caps",
    "limit_attachments",
    "rate_limits_header",
]

# Every other item type (transaction, span, profile, replay_*, check_in, log, unknown ones) is accepted and dropped.
KEPT_ITEM_TYPES = frozenset({"event", "attachment", "session", "sessions", "client_report"})
ERROR_CATEGORIES = "error;default;security"
# How long SDKs should hold back categories that are never kept. An hour keeps the traffic away without
# making a later upgrade that keeps them wait long.
NEVER_KEPT_HEADER = "3600:transaction;span;profile;profile_chunk;replay;monitor;log_item;metric_bucket:key"


class RateLimiter:
    """One token bucket per name: ``per_minute`` tokens, refilled continuously, bursts up to a minute's worth."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, per_minute: int, cost: int = 1) -> float:
        """Spend ``cost`` tokens; return 0 when allowed, else the seconds until the request would be."""
        return self.take_all([(key, per_minute, cost)])

    def take_all(self, costs: Sequence[tuple[str, int, int]]) -> float:
        """Spend ``(bucket, per_minute, cost)`` from every bucket when each has enough, else from none (a request
        refused by one quota must not use up another); 0 when allowed, else the longest wait in seconds.

        A bucket with ``per_minute <= 0`` is off. A cost larger than a minute's worth never fits: the wait given is
        the minute that refills the bucket.
        """
        now = self._clock()
        refilled: list[tuple[str, float, int]] = []
        wait = 0.0
        for name, per_minute, cost in costs:
            if per_minute <= 0:
                continue
            rate = per_minute / 60.0
            tokens, stamp = self._buckets.get(name, (float(per_minute), now))
            tokens = min(float(per_minute), tokens + (now - stamp) * rate)
            refilled.append((name, tokens, cost))
            if tokens < cost:
                wait = max(wait, (cost - tokens) / rate if cost <= per_minute else 60.0)
        for name, tokens, cost in refilled:
            self._buckets[name] = (tokens if wait else tokens - cost, now)
        return wait

    @staticmethod
    def retry_after(wait: float) -> int:
        return max(1, math.ceil(wait))


@dataclass(frozen=True, slots=True)
class AttachmentQuota:
    """A key's attachment quotas: attachments and attachment bytes per minute (0 turns one off)."""

    per_minute: int
    bytes_per_minute: int


def attachment_quota(info: KeyInfo, settings: Settings) -> AttachmentQuota:
    """The key's own quotas where it has them, else the server-wide settings."""
    count, size = info.attachment_rate_limit_per_minute, info.attachment_bytes_per_minute
    return AttachmentQuota(
        settings.attachment_rate_limit_per_minute if count is None else count,
        settings.attachment_bytes_per_minute if size is None else size,
    )


def check_attachment_caps(items: Sequence[Item], settings: Settings) -> None:
    """Refuse the whole envelope when it carries more attachments, or more attachment bytes, than one may.

    The payloads are the decoded (decompressed) ones: what counts is what would be stored.
    """
    sizes = [len(item.payload) for item in items if item.type == "attachment"]
    if len(sizes) > settings.max_envelope_attachments:
        raise IngestError(
            400,
            f"envelope has {len(sizes)} attachments, more than the cap of "
            f"{settings.max_envelope_attachments} attachments per envelope",
        )
    if sum(sizes) > settings.max_envelope_attachment_bytes:
        raise IngestError(
            413,
            f"envelope has {sum(sizes)} bytes of attachments, more than the cap of "
            f"{settings.max_envelope_attachment_bytes} attachment bytes per envelope",
        )


def limit_attachments(
    limiter: RateLimiter, key: str, quota: AttachmentQuota, items: list[Item]
) -> tuple[list[Item], str | None]:
    """The items to keep and the ``X-Sentry-Rate-Limits`` entry for the attachments when they were dropped.

    Like Relay: the attachments within the key's quotas (count and bytes, both or neither) are kept; over either
    one, every attachment of the envelope is dropped and the rest of it (the event, sessions, reports) kept; when
    nothing else is left, the envelope is refused with 429. Public keys hold no NUL, so the bucket names cannot
    meet another key's.
    """
    sizes = [len(item.payload) for item in items if item.type == "attachment"]
    if not sizes:
        return items, None
    wait = limiter.take_all(
        [
            (f"{key}\x00attachment", quota.per_minute, len(sizes)),
            (f"{key}\x00attachment_bytes", quota.bytes_per_minute, sum(sizes)),
        ]
    )
    if not wait:
        return items, None
    METRICS.inc("stackwatch_ingest_attachments_dropped_total", len(sizes), reason="rate_limited")
    METRICS.inc("stackwatch_ingest_attachment_bytes_dropped_total", sum(sizes), reason="rate_limited")
    seconds = RateLimiter.retry_after(wait)
    held_back = f"{seconds}:attachment:key"
    kept = [item for item in items if item.type != "attachment"]
    if not kept:
        raise IngestError(
            429,
            f"attachment rate limit of {_quota_text(quota)} per minute exceeded",
            {"Retry-After": str(seconds), "X-Sentry-Rate-Limits": held_back},
        )
    return kept, held_back


def _quota_text(quota: AttachmentQuota) -> str:
    parts = [f"{quota.per_minute} attachments"] if quota.per_minute > 0 else []
    parts += [f"{quota.bytes_per_minute} bytes"] if quota.bytes_per_minute > 0 else []
    return " and ".join(parts)


def rate_limits_header(held_back: str | None) -> str:
    """The ``X-Sentry-Rate-Limits`` of an accepted envelope: the never-kept categories, and the attachments when
    they were dropped."""
    return NEVER_KEPT_HEADER if held_back is None else f"{held_back}, {NEVER_KEPT_HEADER}"
