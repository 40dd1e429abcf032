"""Grouping strategies, versioned: each issue records the version that created it.

A new version is a new module beside ``v1``; existing issues keep their hashes, and the digest computes hashes
with ``CURRENT``. Changing a released version in place would split every existing issue, so don't.
"""

from __future__ import annotations

from collections.abc import Callable

from stackwatch.server.digest.grouping import v1, v2
from stackwatch.server.digest.grouping.fingerprints import effective_fingerprint, is_default_marker
from stackwatch.server.digest.grouping.rules import EMPTY, ProjectRules
from stackwatch.server.digest.normalize import NormalizedEvent

__all__ = [
    "CURRENT",
    "STRATEGIES",
    "TRANSITION_DAYS",
    "effective_fingerprint",
    "grouping_hash",
    "in_app",
    "is_explicit",
    "moving_from",
]

# A strategy maps an event and its project's rules to a hash; version 1 predates project rules and ignores them.
STRATEGIES: dict[int, Callable[[NormalizedEvent, ProjectRules], str]] = {
    v1.VERSION: lambda event, _rules: v1.grouping_hash(event),
    v2.VERSION: v2.grouping_hash,
}
CURRENT = v2.VERSION
in_app = v2.in_app
# Days a project moving to another version also looks events' issues up by the previous version's hash.
TRANSITION_DAYS = 90


def moving_from(previous: int | None, until: float | None, moment: float) -> int | None:
    """The version a project is moving from at ``moment`` (its settings' ``grouping_previous`` and
    ``grouping_transition_until``), or ``None`` when it is not moving, or no longer."""
    return previous if previous is not None and (until or 0.0) > moment else None


def grouping_hash(event: NormalizedEvent, version: int = CURRENT, rules: ProjectRules = EMPTY) -> str:
    return STRATEGIES[version](event, rules)


def is_explicit(event: NormalizedEvent, rules: ProjectRules = EMPTY) -> bool:
    """Whether a fingerprint (the SDK's, or a project fingerprint rule's) decided the hash without ``{{ default }}``.

    Such a hash says what the issue is on purpose: the digest does not look for the event's issue by an older
    version's hash (a new fingerprint rule must be able to split an issue off).
    """
    fingerprint = effective_fingerprint(event, rules)
    return bool(fingerprint) and not any(is_default_marker(part.strip()) for part in fingerprint or [])
