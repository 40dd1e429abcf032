"""Scrubbing of a whole event: key rules, value rules on every string, and Sentry-shaped ``_meta``.

The walk is iterative (an explicit stack of containers), so nesting depth is bounded by memory, never by the
recursion limit.  Scalars are handled in place as their container is copied; a value's path is only spelled out
when a remark is recorded for it, from parent links kept per container.

``_meta`` is built at the end, remarks applied in the order of a depth-first walk that visits children last to
first (the order of a plain stack walk); that order decides the key order of ``_meta`` and which remark wins when
two paths are spelled the same (``{1: ..., "1": ...}``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from stackwatch.scrub.rules import ALLOWED_KEYS, RULES
from stackwatch.scrub.text import Remark, Scrubbed, ScrubOptions, string_scrubber

__all__ = ["FILTERED", "key_rule", "scrub_event"]

FILTERED = "[Filtered]"

_SUBSTRING_RULES = tuple((r.pattern, r.name) for r in RULES if r.kind == "key")
_PART_RULES = {r.pattern: r.name for r in RULES if r.kind == "key_part"}
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_SEPARATORS = re.compile(r"[^a-z0-9]+")
# Lists under these keys may hold [key, value] pairs (Sentry allows tags and headers in that shape).
_PAIR_PARENTS = frozenset({"tags", "headers", "query_string", "cookies", "env"})
# What _key_policy returns for an allow-listed key (rule names are plain words, so this is never one).
_KEEP = "\x00keep"

# Where a container sits: (parent's link or None for the root, slot in the parent, index among the parent's
# children).  A path is only built from these when a remark needs it.
_Link = tuple[Any, Any, int] | None
# A recorded remark: (link of the container, slot in it, index in it, the ``_meta`` entry).
_Found = tuple[_Link, Any, int, dict[str, Any]]


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


@lru_cache(maxsize=4096)
def _key_policy(key: str) -> str | None:
    """``_KEEP`` for an allow-listed key (its scalar values are kept, rules above it end), else ``key_rule``."""
    return _KEEP if key.lower() in ALLOWED_KEYS else key_rule(key)


def scrub_event(event: Mapping[str, Any], options: ScrubOptions | None = None) -> dict[str, Any]:
    """Return a scrubbed copy of ``event`` (the input is never mutated), with every replacement in ``_meta``."""
    body = {k: v for k, v in event.items() if k != "_meta"}
    found: list[_Found] = []
    scrubbed = _scrub_tree(body, string_scrubber(options), found)
    old_meta = event.get("_meta")
    merged = _copy_tree(old_meta) if isinstance(old_meta, dict) else {}
    _merge_meta(merged, _build_meta(found))
    if merged:
        scrubbed["_meta"] = merged
    return scrubbed


def _scrub_tree(root: dict[Any, Any], scrub: Callable[[str], Scrubbed], found: list[_Found]) -> dict[str, Any]:
    """Copy ``root`` with every scalar scrubbed; append one entry to ``found`` per replaced value.

    A value under a key with a key rule (or anywhere below one) is filtered whole; an allow-listed key keeps its
    scalar value as it is and ends any key rule above it; every other string goes through the value rules.  In a
    list of ``[key, value]`` pairs under a ``_PAIR_PARENTS`` key, the pair's first element is its value's key.

    This loop runs for every value of every event, so the common cases (a string or a plain scalar under no key
    rule) are written out in it; the rest goes through ``_scalar``.
    """
    key_policy = _key_policy
    plain_scalars = _PLAIN_SCALARS
    out: dict[str, Any] = {}
    # Containers still to fill: (source, its empty copy, inherited key rule, link, role).
    stack: list[tuple[Any, Any, str | None, _Link, int]] = [(root, out, None, None, _PLAIN)]
    while stack:
        source, dest, inherited, link, role = stack.pop()
        if type(dest) is dict:
            for index, (k, value) in enumerate(source.items()):
                key = k if type(k) is str else str(k)
                policy = key_policy(key)
                keep = policy is _KEEP
                rule = None if keep else inherited or policy
                kind = type(value)
                if kind is str or kind in plain_scalars:
                    if rule is not None:
                        value = _scalar(value, rule, scrub, found, link, k, index)
                    elif kind is str and not keep:
                        result = scrub(value)
                        if result is not None:
                            found.append((link, k, index, _value_entry(value, result)))
                            value = result[0]
                    dest[k] = value
                    continue
                container = _empty_copy(value)
                if container is None:
                    dest[k] = value if keep else _scalar(value, rule, scrub, found, link, k, index)
                    continue
                dest[k] = container
                stack.append(
                    (value, container, rule, (link, k, index), _UNDER_PAIR_KEY if key in _PAIR_PARENTS else _PLAIN)
                )
        else:
            # In a pair, an allow-listed key is kept as it is, like a dict key, and so is its scalar value.
            pair_policy = _pair_key_policy(source[0], scrub) if role == _MAYBE_PAIR and _is_pair(source) else None
            keep = pair_policy is _KEEP
            child_role = _MAYBE_PAIR if role == _UNDER_PAIR_KEY else _PLAIN
            for index, value in enumerate(source):
                rule = None if keep else inherited or (pair_policy if index == 1 else None)
                kind = type(value)
                if kind is str or kind in plain_scalars:
                    if rule is not None:
                        value = _scalar(value, rule, scrub, found, link, index, index)
                    elif kind is str and not keep:
                        result = scrub(value)
                        if result is not None:
                            found.append((link, index, index, _value_entry(value, result)))
                            value = result[0]
                    dest.append(value)
                    continue
                container = _empty_copy(value)
                if container is None:
                    dest.append(value if keep else _scalar(value, rule, scrub, found, link, index, index))
                    continue
                dest.append(container)
                stack.append((value, container, rule, (link, index, index), child_role))
    return out


def _pair_key_policy(key: str, scrub: Callable[[str], Scrubbed]) -> str | None:
    """``_key_policy`` for the key of a ``[key, value]`` pair, which is itself a string that gets scrubbed.

    A second pass sees the key as stored, with its secrets replaced by labels (``AKIA...`` becomes
    ``[Filtered:aws_access_key]``, which the ``access_key`` rule matches), so that form decides too: scrubbing a
    scrubbed event then finds nothing new.
    """
    policy = _key_policy(key)
    if policy is None:
        stored = scrub(key)
        if stored is not None:
            policy = key_rule(stored[0])
    return policy


# Scalar types handled in the walk's loop itself (bool is a subclass of int, but not of these exact types).
_PLAIN_SCALARS = frozenset({int, float, bool, type(None)})

# Roles of a list in the walk: plain; directly under a _PAIR_PARENTS key (its lists may be pairs); one of those lists.
_PLAIN, _UNDER_PAIR_KEY, _MAYBE_PAIR = 0, 1, 2


def _empty_copy(value: Any) -> dict[Any, Any] | list[Any] | None:
    """An empty dict for a mapping, an empty list for a list or tuple, None for a scalar."""
    kind = type(value)
    if kind is dict:
        return {}
    if kind is list or kind is tuple:
        return []
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return None
    if isinstance(value, Mapping):  # other mapping and sequence types; a mapping that is also a sequence is a mapping
        return {}
    if isinstance(value, list | tuple):
        return []
    return None


def _scalar(
    value: Any,
    rule: str | None,
    scrub: Callable[[str], Scrubbed],
    found: list[_Found],
    link: _Link,
    slot: Any,
    index: int,
) -> Any:
    """The scrubbed form of a scalar ``value`` at ``slot`` of the container at ``link``."""
    if rule is not None:
        if isinstance(value, str) and value not in ("", FILTERED):
            found.append((link, slot, index, {"rem": [[rule, "x"]], "len": len(value)}))
            return FILTERED
        if isinstance(value, int | float) and not isinstance(value, bool):
            found.append((link, slot, index, {"rem": [[rule, "x"]]}))
            return FILTERED
        return value
    if isinstance(value, str):
        result = scrub(value)
        if result is not None:
            found.append((link, slot, index, _value_entry(value, result)))
            return result[0]
    return value


def _value_entry(value: str, result: tuple[str, tuple[Remark, ...]]) -> dict[str, Any]:
    return {"rem": [r.to_meta() for r in result[1]], "len": len(value)}


def _is_pair(value: Any) -> bool:
    return len(value) == 2 and isinstance(value[0], str)


def _build_meta(found: list[_Found]) -> dict[str, Any]:
    """``_meta`` for the remarks in ``found``, applied in the order of a last-child-first depth-first walk."""
    ordered = []
    for link, slot, index, entry in found:
        slots = [slot]
        order = [-index]
        while link is not None:
            link, slot, index = link
            slots.append(slot)
            order.append(-index)
        slots.reverse()
        order.reverse()
        ordered.append((order, slots, entry))
    ordered.sort(key=lambda item: item[0])
    meta: dict[str, Any] = {}
    for _order, slots, entry in ordered:
        node = meta
        for slot in slots:
            node = node.setdefault(str(slot), {})
        node[""] = entry
    return meta


def _copy_tree(root: Any) -> Any:
    """A deep copy of plain data: mappings become dicts, lists and tuples become lists, anything else is shared."""
    holder: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(root, holder, 0)]
    while stack:
        value, dest, slot = stack.pop()
        container = _empty_copy(value)
        dest[slot] = value if container is None else container
        if isinstance(container, dict):
            for k, v in value.items():
                container[k] = None
                stack.append((v, container, k))
        elif container is not None:
            container.extend([None] * len(value))
            for i, v in enumerate(value):
                stack.append((v, container, i))
    return holder[0]


def _merge_meta(target: dict[str, Any], new: dict[str, Any]) -> None:
    """Merge the new ``_meta`` into a copy of the event's own: remarks are appended, the first ``len`` stays.

    Under ``""`` a node holds its own remarks -- or, for an event key that is the empty string, that key's node:
    the format cannot tell them apart.  Values written here tell: remarks and lengths are a list and an int, nodes
    are dicts, so an entry's nodes are merged as nodes instead of being taken for remarks.
    """
    stack = [(target, new)]
    while stack:
        dst, src = stack.pop()
        for k, v in src.items():
            existing = dst.get(k)
            if k == "" and isinstance(existing, dict):
                rem, new_rem = existing.get("rem"), v.get("rem")
                if isinstance(new_rem, list):
                    existing["rem"] = (rem if isinstance(rem, list) else []) + new_rem
                if isinstance(v.get("len"), int):
                    existing.setdefault("len", v["len"])
                nodes = {nk: nv for nk, nv in v.items() if isinstance(nv, dict)}
                if nodes:
                    stack.append((existing, nodes))
            elif isinstance(existing, dict):
                stack.append((existing, v))
            else:
                dst[k] = v
