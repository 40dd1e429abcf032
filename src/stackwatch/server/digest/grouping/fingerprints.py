"""Fingerprint rules applied: the fingerprint that decides an event's hash, the SDK's or a project rule's.

The rules themselves are parsed in rules.py; the syntax is documented in docs/grouping.md, "Fingerprint rules".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from stackwatch.server.digest.grouping.frames import FrameView, event_views
from stackwatch.server.digest.grouping.rules import EMPTY, VARIABLE, FingerprintRule, ProjectRules, frame_matches
from stackwatch.server.digest.normalize import NormalizedEvent, as_dict

__all__ = ["effective_fingerprint", "is_default_marker"]


def is_default_marker(part: str) -> bool:
    """``{{ default }}`` however it is spaced."""
    return part.replace(" ", "") == "{{default}}"


def _event_values(event: NormalizedEvent, key: str) -> Sequence[str]:
    data = event.data
    if key == "error.type":
        return [str(e.get("type") or "") for e in event.exceptions] or [""]
    if key == "error.value":
        return [str(e.get("value") or "") for e in event.exceptions] or [""]
    if key == "message":
        entry = as_dict(data.get("logentry"))
        texts = [str(entry.get(name)) for name in ("formatted", "message") if entry.get(name)]
        return texts + [str(e.get("value") or "") for e in event.exceptions] or [""]
    if key == "level":
        return [event.level]
    if key == "release":
        return [event.release or ""]
    if key == "logger":
        return [str(data.get("logger") or "")]
    return [event.tags.get(key[5:], "")]  # tags.NAME


def _matching_frame(rule: FingerprintRule, views: list[list[FrameView]]) -> FrameView | None:
    """The innermost frame on which every frame matcher of the rule holds."""
    for frames in reversed(views):
        for view in reversed(frames):
            if frame_matches(rule.frame_matchers, view, view.sdk_in_app):
                return view
    return None


def _innermost(views: list[list[FrameView]]) -> FrameView | None:
    frames = views[-1] if views else []
    in_app = [view for view in frames if view.sdk_in_app is True]
    chosen = in_app or frames
    return chosen[-1] if chosen else None


def _expand(part: str, event: NormalizedEvent, frame: FrameView | None) -> str:
    outermost = event.exceptions[-1] if event.exceptions else {}

    def value(match: re.Match[str]) -> str:
        name = match[1]
        found = {
            "error.type": outermost.get("type"),
            "error.value": outermost.get("value"),
            "transaction": event.data.get("transaction"),
            "level": event.level,
            "logger": event.data.get("logger"),
            "function": frame.function if frame else None,
            "module": (frame.module or frame.place()) if frame else None,
        }.get(name)
        if name == "default":
            return match[0]
        return str(found) if found else f"<no-{name.replace('.', '-')}>"

    return VARIABLE.sub(value, part)


def _rule_fingerprint(
    event: NormalizedEvent, rules: ProjectRules, views: Callable[[], list[list[FrameView]]]
) -> list[str] | None:
    for rule in rules.fingerprint_rules:
        if not all(m.test(_event_values(event, m.key)) for m in rule.event_matchers):
            continue
        frame: FrameView | None = None
        if rule.frame_matchers:
            frame = _matching_frame(rule, views())
            if frame is None:
                continue
        elif any("function" in part or "module" in part for part in rule.parts):
            frame = _innermost(views())
        return [_expand(part, event, frame) for part in rule.parts]
    return None


def effective_fingerprint(event: NormalizedEvent, rules: ProjectRules = EMPTY) -> list[str] | None:
    """The fingerprint that decides the event's hash: the SDK's, else the first matching fingerprint rule's.

    An SDK fingerprint that is only ``{{ default }}`` says nothing, so a rule may still give one. ``None``: the
    strategy's default grouping decides.
    """
    sdk = event.fingerprint
    if sdk and not all(is_default_marker(part) for part in sdk):
        return sdk
    if rules.fingerprint_rules:
        cache: list[list[list[FrameView]]] = []

        def views() -> list[list[FrameView]]:
            if not cache:
                cache.append(event_views(event))
            return cache[0]

        found = _rule_fingerprint(event, rules, views)
        if found is not None:
            return found
    return sdk
