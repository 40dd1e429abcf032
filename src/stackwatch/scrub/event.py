"""Scrubbing of a whole event: key rules, value rules on every string, and Sentry-shaped ``_meta``.

The walk is iterative (an explicit stack), so nesting depth is bounded by memory, never by the recursion limit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from stackwatch.scrub.rules import ALLOWED_KEYS, RULES
from stackwatch.scrub.text import ScrubOptions, scrub_text

__all__ = ["FILTERED", "key_rule", "scrub_event"]

FILTERED = "[Filtered]"

_SUBSTRING_RULES = tuple((r.pattern, r.name) for r in RULES if r.kind == "key")
_PART_RULES = {r.pattern: r.name for r in RULES if r.kind == "key_part"}
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_SEPARATORS = re.compile(r"[^a-z0-9]+")
# Lists under these keys may hold [key, value] pairs (Sentry allows tags and headers in that shape).
_PAIR_PARENTS = frozenset({"tags", "headers", "query_string", "cookies", "env"})

# Stack frame: (value, destination container, slot in it, path, key name, inherited key rule, scrub?)
_Frame = tuple[Any, Any, Any, tuple[str, ...], str | None, str | None, bool]


@lru_cache(maxsize=4096)
def key_rule(key: str) -> str | None:
    """Name of the key rule that filters values under ``key``, or ``None``."""
    if key.lower() in ALLOWED_KEYS:
        return None
    normalized = _SEPARATORS.sub("_", _CAMEL.sub(r"\1_\2", key).lower())
    compact = normalized.replace("_", "")
    for pattern, name in _SUBSTRING_RULES:
        if pattern in normalized or pattern in compact:
            return name
    for part in normalized.split("_"):
        if part in _PART_RULES:
            return _PART_RULES[part]
    return None


def scrub_event(event: Mapping[str, Any], options: ScrubOptions | None = None) -> dict[str, Any]:
    """Return a scrubbed copy of ``event`` (the input is never mutated), with every replacement in ``_meta``."""
    opts = options or ScrubOptions()
    body = {k: v for k, v in event.items() if k != "_meta"}
    meta: dict[str, Any] = {}
    scrubbed = _walk(body, opts, meta, scrub=True)
    old_meta = event.get("_meta")
    merged = _walk(old_meta, opts, {}, scrub=False) if isinstance(old_meta, dict) else {}
    _merge_meta(merged, meta)
    if merged:
        scrubbed["_meta"] = merged
    return dict(scrubbed)


def _walk(root: Any, options: ScrubOptions, meta: dict[str, Any], *, scrub: bool) -> Any:
    holder: list[Any] = [None]
    stack: list[_Frame] = [(root, holder, 0, (), None, None, scrub)]
    while stack:
        value, dest, slot, path, key, inherited, active = stack.pop()
        if isinstance(value, Mapping):
            new: dict[Any, Any] = {}
            dest[slot] = new
            for k, v in value.items():
                new[k] = None
                stack.append(_child(v, new, k, path, str(k), inherited, active))
        elif isinstance(value, list | tuple):
            items: list[Any] = [None] * len(value)
            dest[slot] = items
            pair = key is None and _is_pair(value) and len(path) >= 2 and path[-2] in _PAIR_PARENTS
            for i, v in enumerate(value):
                child_key = value[0] if pair and i == 1 else None
                stack.append(_child(v, items, i, path, child_key, inherited, active))
        else:
            dest[slot] = _scalar(value, path, key, inherited, active, options, meta)
    return holder[0]


def _child(
    value: Any,
    dest: Any,
    slot: Any,
    path: tuple[str, ...],
    key: str | None,
    inherited: str | None,
    active: bool,
) -> _Frame:
    segment = str(slot)
    if key is not None and key.lower() in ALLOWED_KEYS:
        return (value, dest, slot, (*path, segment), key, None, False if _is_scalar(value) else active)
    rule = inherited or (key_rule(key) if key is not None and active else None)
    return (value, dest, slot, (*path, segment), key, rule, active)


def _scalar(
    value: Any,
    path: tuple[str, ...],
    key: str | None,
    rule: str | None,
    active: bool,
    options: ScrubOptions,
    meta: dict[str, Any],
) -> Any:
    if not active:
        return value
    if rule is not None:
        if isinstance(value, str) and value not in ("", FILTERED):
            _record(meta, path, {"rem": [[rule, "x"]], "len": len(value)})
            return FILTERED
        if isinstance(value, int | float) and not isinstance(value, bool):
            _record(meta, path, {"rem": [[rule, "x"]]})
            return FILTERED
        return value
    if isinstance(value, str):
        new, remarks = scrub_text(value, options)
        if remarks:
            _record(meta, path, {"rem": [r.to_meta() for r in remarks], "len": len(value)})
        return new
    return value


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, Mapping | list | tuple)


def _is_pair(value: Any) -> bool:
    return len(value) == 2 and isinstance(value[0], str)


def _record(meta: dict[str, Any], path: tuple[str, ...], entry: dict[str, Any]) -> None:
    node = meta
    for segment in path:
        node = node.setdefault(segment, {})
    node[""] = entry


def _merge_meta(target: dict[str, Any], new: dict[str, Any]) -> None:
    stack = [(target, new)]
    while stack:
        dst, src = stack.pop()
        for k, v in src.items():
            existing = dst.get(k)
            if k == "":
                if isinstance(existing, dict):
                    rem = existing.get("rem")
                    existing["rem"] = (rem if isinstance(rem, list) else []) + v["rem"]
                    if "len" in v:
                        existing.setdefault("len", v["len"])
                else:
                    dst[k] = v
            elif isinstance(existing, dict):
                stack.append((existing, v))
            else:
                dst[k] = v
