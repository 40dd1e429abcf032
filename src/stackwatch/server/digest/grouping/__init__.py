"""Grouping strategies, versioned: each issue records the version that created it.

A new version is a new module beside ``v1``; existing issues keep their hashes, and the digest computes hashes
with ``CURRENT``. Changing a released version in place would split every existing issue, so don't.
"""

from __future__ import annotations

from collections.abc import Callable

from stackwatch.server.digest.grouping import v1
from stackwatch.server.digest.normalize import NormalizedEvent

__all__ = ["CURRENT", "STRATEGIES", "grouping_hash"]

STRATEGIES: dict[int, Callable[[NormalizedEvent], str]] = {v1.VERSION: v1.grouping_hash}
CURRENT = v1.VERSION


def grouping_hash(event: NormalizedEvent, version: int = CURRENT) -> str:
    return STRATEGIES[version](event)
