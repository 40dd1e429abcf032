"""Scrubbing of a whole event: key rules, value rules on every string, and Sentry-shaped ``_meta``.

The walk is iterative (an explicit stack of containers), so nesting depth is bounded by memory, never by the
recursion limit.  Scalars are handled in place as their container is copied; a value's path is only spelled out
when a remark is recorded for it, from parent links kept per container.

``_meta`` is built at the end, remarks applied in the order of a depth-first walk that visits children last to
first (the order of a plain stack walk); that order decides the key order of ``_meta`` and which remark wins when
two paths are spelled the same (``{1: ..., "1": ...}``).

Keys are scrubbed too.  A key in which the value rules find a secret (a token used as a dict key, a tag named
after a secret) is replaced by its scrubbed form (``[Filtered:github_token]``), made distinct within its object by
a `` #2``, `` #3``, ... suffix when that form is taken; the replacement is recorded at the new key's path as
``[rule, "k", start, end]`` (offsets of the label in the new key).  The new key is what decides the key rules for
its value, so scrubbing the result again changes nothing.

The ``_meta`` an event arrives with is not trusted: only remarks of the shape this engine writes survive
(``rem`` entries ``[rule, kind]`` or ``[rule, kind, start, end]`` with a plain rule name, ``len`` an integer),
at paths whose keys hold no secret; anything else (``val``, ``err``, free text, a path made of a secret) is dropped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from stackwatch.scrub.rules import ALLOWED_KEYS, CONFUSABLES, KEY_LABEL, LIST_PAIRING, PAIR_PARENTS, RULES
from stackwatch.scrub.text import Remark, Scrubbed, ScrubOptions, string_scrubber

__all__ = ["FILTERED", "fold_key", "key_rule", "scrub_event"]

FILTERED = KEY_LABEL
_KEY_KIND = "k"  # the remark kind for a replaced key
# The pairing rule across list items (rules.json's "list_pairing"): AWS secret access keys beside key ids.
_LABELS = {r.name: r.label for r in RULES}
_AWS_KEY_LABEL = _LABELS[LIST_PAIRING["beside"]]
_AWS_SECRET_RULE = LIST_PAIRING["rule"]
_AWS_SECRET = re.compile(LIST_PAIRING["item"])
_LABEL = re.compile(r"\[Filtered:([A-Za-z0-9_]+)\]")
_CONFUSABLES = str.maketrans(CONFUSABLES)

_SUBSTRING_RULES = tuple((r.pattern, r.name) for r in RULES if r.kind == "key")
_PART_RULES = {r.pattern: r.name for r in RULES if r.kind == "key_part"}
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_SEPARATORS = re.compile(r"[^a-z0-9]+")
# Lists under these keys may hold [key, value] pairs (Sentry allows tags and headers in that shape).
_PAIR_PARENTS = PAIR_PARENTS
# What _key_policy returns for an allow-listed key (rule names are plain words, so this is never one).
_KEEP = "\x00keep"

# Where a container sits: (parent's link or None for the root, slot in the parent, index among the parent's
# children).  A path is only built from these when a remark needs it.
_Link = tuple[Any, Any, int] | None
# A recorded remark: (link of the container, slot in it, index in it, the ``_meta`` entry).
_Found = tuple[_Link, Any, int, dict[str, Any]]


def fold_key(key: str) -> str:
    """``key`` with look-alike letters folded to ASCII: NFKC, combining marks and format characters (zero-width
    spaces, joiners) removed, Cyrillic and Greek homoglyphs mapped to Latin."""
    if key.isascii():
        return key
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", key))
    kept = "".join(ch for ch in decomposed if unicodedata.category(ch) not in ("Mn", "Me", "Cf"))
    return unicodedata.normalize("NFC", kept).translate(_CONFUSABLES)


@lru_cache(maxsize=4096)
def key_rule(key: str) -> str | None:
    """Name of the key rule that filters values under ``key``, or ``None``."""
    key = fold_key(key)
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
    """``_KEEP`` for an allow-listed key (no key rule below it, rules above it end), else ``key_rule``."""
    return _KEEP if fold_key(key).lower() in ALLOWED_KEYS else key_rule(key)


# What the walk needs to know of a key: (the key policy, or None; the scrubbed key and its remarks when the value
# rules replaced part of it, else None).  The policy is the one of the key as it will be stored.
_KeyInfo = tuple[str | None, tuple[str, tuple[Remark, ...]] | None]


def _key_infos(scrub: Callable[[str], Scrubbed]) -> Callable[[str], _KeyInfo]:
    @lru_cache(maxsize=4096)
    def key_info(key: str) -> _KeyInfo:
        result = scrub(key)
        stored = key if result is None else result[0]
        policy = _key_policy(stored)
        if policy is None:
            # A key that held a secret filters its value too (a token used as a key maps to what it unlocks), by the
            # rule that replaced it.  Decided on the stored form, so a scrubbed event scrubs to itself.
            label = _LABEL.search(stored)
            if label is not None:
                policy = label.group(1)
        return (policy, result)

    return key_info


_KEY_INFOS: dict[Callable[[str], Scrubbed], Callable[[str], _KeyInfo]] = {}


def _key_info_for(scrub: Callable[[str], Scrubbed]) -> Callable[[str], _KeyInfo]:
    info = _KEY_INFOS.get(scrub)
    if info is None:
        info = _KEY_INFOS.setdefault(scrub, _key_infos(scrub))
    return info


def scrub_event(event: Mapping[str, Any], options: ScrubOptions | None = None) -> dict[str, Any]:
    """Return a scrubbed copy of ``event`` (the input is never mutated), with every replacement in ``_meta``."""
    body = {k: v for k, v in event.items() if k != "_meta"}
    found: list[_Found] = []
    scrub = string_scrubber(options)
    scrubbed = _scrub_tree(body, scrub, found)
    old_meta = event.get("_meta")
    merged = _trusted_meta(old_meta, scrub) if isinstance(old_meta, Mapping) else {}
    _merge_meta(merged, _build_meta(found))
    if merged:
        scrubbed["_meta"] = merged
    return scrubbed


def _scrub_tree(root: dict[Any, Any], scrub: Callable[[str], Scrubbed], found: list[_Found]) -> dict[str, Any]:
    """Copy ``root`` with every key and scalar scrubbed; append one entry to ``found`` per replacement.

    A value under a key with a key rule (or anywhere below one) is filtered whole; an allow-listed key is exempt
    from key rules and ends any key rule above it; every other string goes through the value rules, whatever its
    key.  In a list of ``[key, value]`` pairs under a ``_PAIR_PARENTS`` key, the pair's first element is its
    value's key.  A list that holds an AWS access key id gets the strings beside it checked as its secret key.

    This loop runs for every value of every event, so the common cases (a string or a plain scalar under no key
    rule, a key with nothing to replace) are written out in it; the rest goes through ``_scalar``.
    """
    key_info = _key_info_for(scrub)
    plain_scalars = _PLAIN_SCALARS
    out: dict[str, Any] = {}
    # Containers still to fill: (source, its empty copy, inherited key rule, link, role).
    stack: list[tuple[Any, Any, str | None, _Link, int]] = [(root, out, None, None, _PLAIN)]
    while stack:
        source, dest, inherited, link, role = stack.pop()
        if type(dest) is dict:
            for index, (k, value) in enumerate(source.items()):
                policy, renamed = key_info(k if type(k) is str else str(k))
                if renamed is not None:
                    k = _rename(renamed, source, dest, found, link, index)
                    policy = key_info(k)[0]
                rule = None if policy is _KEEP else inherited or policy
                kind = type(value)
                if kind is str or kind in plain_scalars:
                    if rule is not None:
                        value = _scalar(value, rule, scrub, found, link, k, index)
                    elif kind is str:
                        result = scrub(value)
                        if result is not None:
                            found.append((link, k, index, _value_entry(value, result)))
                            value = result[0]
                    dest[k] = value
                    continue
                container = _empty_copy(value)
                if container is None:
                    dest[k] = _scalar(value, rule, scrub, found, link, k, index)
                    continue
                dest[k] = container
                stack.append(
                    (value, container, rule, (link, k, index), _UNDER_PAIR_KEY if k in _PAIR_PARENTS else _PLAIN)
                )
        else:
            # In a pair, the key decides like a dict key does: in its stored form, allow-listed ones exempt.
            pair_policy = key_info(source[0])[0] if role == _MAYBE_PAIR and _is_pair(source) else None
            keep = pair_policy is _KEEP
            child_role = _MAYBE_PAIR if role == _UNDER_PAIR_KEY else _PLAIN
            key_id = False  # an item of this list was an AWS access key id
            for index, value in enumerate(source):
                rule = None if keep else inherited or (pair_policy if index == 1 else None)
                kind = type(value)
                if kind is str or kind in plain_scalars:
                    if rule is not None:
                        value = _scalar(value, rule, scrub, found, link, index, index)
                    elif kind is str:
                        result = scrub(value)
                        if result is not None:
                            found.append((link, index, index, _value_entry(value, result)))
                            value = result[0]
                            key_id = key_id or value == _AWS_KEY_LABEL
                    dest.append(value)
                    continue
                container = _empty_copy(value)
                if container is None:
                    dest.append(_scalar(value, rule, scrub, found, link, index, index))
                    continue
                dest.append(container)
                stack.append((value, container, rule, (link, index, index), child_role))
            if key_id:
                _pair_aws_secrets(dest, found, link)
    return out


def _rename(
    renamed: tuple[str, tuple[Remark, ...]],
    source: Any,
    dest: dict[Any, Any],
    found: list[_Found],
    link: _Link,
    index: int,
) -> str:
    """The key to store for a key whose scrubbed form is ``renamed``: that form, with `` #2``, `` #3``, ... when
    another key of the object (as sent, or as already stored) is spelled so; records the replacement."""
    base, remarks = renamed
    key, n = base, 1
    while key in dest or key in source:
        n += 1
        key = f"{base} #{n}"
    found.append((link, key, index, {"rem": [[r.rule, _KEY_KIND, r.start, r.end] for r in remarks]}))
    return key


def _pair_aws_secrets(dest: list[Any], found: list[_Found], link: _Link) -> None:
    """The pairing rule across list items: a string of 40 secret-key characters beside an AWS access key id."""
    label = _LABELS[_AWS_SECRET_RULE]
    for index, value in enumerate(dest):
        if value != _AWS_KEY_LABEL:
            continue
        for other in (index - 1, index + 1):
            if 0 <= other < len(dest) and type(dest[other]) is str and _AWS_SECRET.fullmatch(dest[other]):
                found.append((link, other, other, {"rem": [[_AWS_SECRET_RULE, "s", 0, len(label)]], "len": 40}))
                dest[other] = label


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
        existing = node.get("")
        if existing is None:
            node[""] = entry
            continue
        # A replaced key and its replaced value share a path; so do {1: ..., "1": ...}: one entry, both remarks.
        rem = existing.get("rem")
        if rem is None or isinstance(rem, list):
            existing["rem"] = (rem or []) + entry["rem"]
        if "len" in entry and not isinstance(existing.get("len"), int):
            existing["len"] = entry["len"]
    return meta


# What a remark of a client's ``_meta`` may say: a plain rule name (sentry-sdk's start with "!") and one of the kinds
# Sentry defines (annotated, removed, substituted, masked, pseudonymized, encrypted) or this engine's key kind.
_RULE_NAME = re.compile(r"!?[A-Za-z0-9_.:-]{1,64}")
_REMARK_KINDS = frozenset({"a", "x", "s", "m", "p", "e", _KEY_KIND})


def _trusted_meta(meta: Mapping[Any, Any], scrub: Callable[[str], Scrubbed]) -> dict[str, Any]:
    """The part of an event's own ``_meta`` that can be kept: nodes at paths whose keys hold no secret, and in
    them only well-formed remarks and lengths.  A client can put anything in ``_meta`` (Sentry's ``val`` carries an
    original value), so nothing else of it is stored.  Keeping what this engine writes unchanged makes scrubbing
    idempotent; empty nodes are pruned."""
    out: dict[str, Any] = {}
    visited: list[tuple[dict[str, Any], str, dict[str, Any]]] = []
    stack: list[tuple[Mapping[Any, Any], dict[str, Any]]] = [(meta, out)]
    while stack:
        source, dest = stack.pop()
        for key, value in source.items():
            if not isinstance(key, str) or not isinstance(value, Mapping):
                continue
            node: dict[str, Any] = {}
            if key == "":
                # The entry of this node: remarks and length; a mapping in it is the node of a child key "".
                rem, length = value.get("rem"), value.get("len")
                if isinstance(rem, list):
                    remarks = [r for r in (_trusted_remark(r, scrub) for r in rem) if r is not None]
                    if remarks:
                        node["rem"] = remarks
                if type(length) is int and length >= 0:
                    node["len"] = length
                children = {k: v for k, v in value.items() if isinstance(v, Mapping)}
                stack.append((children, node))
            elif scrub(key) is not None:
                continue  # a path through a key that holds a secret: the key is stored replaced, if at all
            else:
                stack.append((value, node))
            dest[key] = node
            visited.append((dest, key, node))
    for parent, key, node in reversed(visited):
        if not node:
            del parent[key]
    return out


def _trusted_remark(remark: Any, scrub: Callable[[str], Scrubbed]) -> list[Any] | None:
    if not isinstance(remark, list) or len(remark) not in (2, 4):
        return None
    rule, kind = remark[0], remark[1]
    if not (isinstance(rule, str) and _RULE_NAME.fullmatch(rule) and isinstance(kind, str)):
        return None
    if kind not in _REMARK_KINDS or scrub(rule) is not None:
        return None
    if len(remark) == 4:
        start, end = remark[2], remark[3]
        if type(start) is not int or type(end) is not int or not 0 <= start <= end:
            return None
    return list(remark)


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
