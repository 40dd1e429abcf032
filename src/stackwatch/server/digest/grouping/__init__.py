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
    "mark_in_app",
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
    """Whether the event's grouping was decided on purpose: by a project fingerprint rule that matches it (with
    ``{{ default }}`` or without), or by an SDK fingerprint without ``{{ default }}``.

    The digest then does not look for the event's issue by an older version's hash: that version knows no project
    rules, and its hash would pull the event back into the issue a new rule is there to split it from. An SDK
    fingerprint without ``{{ default }}`` hashes the same in every version, so there is nothing to look for.
    """
    fingerprint = effective_fingerprint(event, rules)
    if fingerprint is None:
        return False
    from_rule = fingerprint is not event.fingerprint
    return from_rule or not any(is_default_marker(part.strip()) for part in fingerprint)


def mark_in_app(event: NormalizedEvent, rules: ProjectRules = EMPTY) -> None:
    """Write into the event's frames whether each is the application's code, as version 2 decides it (the SDK's
    flag, the built-in guesses where it said nothing, then the project's ``+app``/``-app`` rules), so that the
    culprit and the event page see what grouping saw. After hashing: version 1 reads the SDK's own flags.
    """
    for exception in event.exceptions:
        stacktrace = exception.get("stacktrace")
        for frame in stacktrace["frames"] if isinstance(stacktrace, dict) else []:
            flag = in_app(frame, event.platform, rules)
            if flag is not None and frame.get("in_app") is not flag:
                frame["in_app"] = flag
