"""Scrubbing of a single string with the value rules.

Almost every string of an event (source lines, file and module names, ids, timestamps) holds no secret, so the
work is arranged around proving that quickly:

1. Strings of fewer than ``_MIN_CANDIDATE_LEN`` characters are returned as they are.
2. One pre-check per string: a single regex over the lower-cased text finds any hint of any active rule (a trie of
   the literals), and one more over the text the triggers (``rules.py``) of the rules without hints (card numbers,
   IBANs, base64, long opaque tokens).  When neither matches, no rule would run, and the string is returned
   unchanged: two scans instead of one or more per rule.  When no hint matched, only the rules without hints are
   tried further.
3. Otherwise every rule checks its own hints, then its trigger, and only then runs ``finditer``.

Results for strings up to ``_CACHE_MAX_LEN`` characters are kept in a bounded LRU cache per combination of options:
source context lines, file names and module names repeat from one event to the next.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from stackwatch.scrub.rules import OPTIONAL_RULES, RULES, Rule
from stackwatch.scrub.validators import VALIDATORS, Validator, base64_secret

__all__ = ["Remark", "ScrubOptions", "Scrubbed", "clear_cache", "scrub_text", "string_scrubber"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScrubOptions:
    """What to scrub beyond the always-on rules.  Emails and IP addresses are often wanted for debugging."""

    scrub_emails: bool = False
    scrub_ips: bool = False


class Remark(NamedTuple):
    """One replacement, as Sentry's ``_meta`` records it: ``[rule, "s", start, end]`` (offsets in the *new* text)."""

    rule: str
    kind: str
    start: int
    end: int

    def to_meta(self) -> list[str | int]:
        return [self.rule, self.kind, self.start, self.end]


# The new text and its remarks, or None when nothing was replaced.  Immutable, so cached results can be shared.
Scrubbed = tuple[str, tuple[Remark, ...]] | None

# Every rule needs at least a few characters; shorter strings skip all regex work.
_MIN_CANDIDATE_LEN = 6
# The cache holds at most _CACHE_SIZE strings of at most _CACHE_MAX_LEN characters per combination of options in
# use (about 2 MB when full of ASCII text, a few MB at worst); longer strings are scrubbed afresh every time.
_CACHE_SIZE = 4096
_CACHE_MAX_LEN = 256
# Passes over a string at most (see ``scrub_uncached``): a second one rarely finds more, a third never has in the
# property tests (clients/js/test/scrub-property.test.js).
_MAX_PASSES = 3


@dataclass(frozen=True, slots=True)
class _Compiled:
    rule: Rule
    regex: re.Pattern[str]
    validator: Validator | None
    has_group: bool
    trigger: re.Pattern[str] | None
    shared: bool  # another rule has the same pattern: its matches are found once for both


def _finds_secret(text: str) -> bool:
    """Whether the always-on value rules find anything in ``text`` (for base64 that decodes to text)."""
    return _RULE_SETS[False, False].scrub(text) is not None


_VALIDATORS: dict[str, Validator] = {**VALIDATORS, "base64_secret": base64_secret(_finds_secret)}


def _compile(rules: tuple[Rule, ...]) -> tuple[_Compiled, ...]:
    out = []
    patterns = [rule.pattern for rule in rules]
    for rule in rules:
        regex = re.compile(rule.pattern)
        validator = _VALIDATORS[rule.validator] if rule.validator else None
        trigger = re.compile(rule.trigger) if rule.trigger is not None else None
        shared = patterns.count(rule.pattern) > 1
        out.append(_Compiled(rule, regex, validator, "v" in regex.groupindex, trigger, shared))
    return tuple(out)


_Trie = dict[str, "_Trie"]


def _any_literal(literals: Iterable[str]) -> re.Pattern[str]:
    """A regex that matches where any of ``literals`` starts, written as a trie (``a(?:bia|cca)|b...``).

    Python's regex engine tries the alternatives of a flat ``abia|acca|...`` one by one at every position; the trie
    tries each character once, and since every alternative starts with a plain character the engine skips ahead
    to the next position holding one of those first characters.
    """
    trie: _Trie = {}
    for literal in literals:
        node = trie
        for ch in literal:
            node = node.setdefault(ch, {})
        node[""] = {}  # a literal ends here

    def emit(node: _Trie) -> str:
        if "" in node:
            return ""  # a literal ends here: the longer ones below it contain it, so they need no test of their own
        parts = [re.escape(ch) + emit(child) for ch, child in sorted(node.items())]
        return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"

    return re.compile(emit(trie))


class _RuleSet:
    """The value rules active for one combination of options, with their pre-check and result cache."""

    def __init__(self, rules: tuple[_Compiled, ...]) -> None:
        self.rules = rules
        # The pre-check screens a rule by its hints (all hints go into one regex) or, when it has none, by its
        # trigger (all of those go into another); a rule with neither could match anything: no pre-check then.
        self._unscreened = any(not c.rule.hints and c.trigger is None for c in rules)
        literals = {h for c in rules for h in c.rule.hints}
        # For "is any hint present" a hint that contains another one ("api_key" holds "key") adds nothing.
        literals = {h for h in literals if not any(other != h and other in h for other in literals)}
        self._hints = _any_literal(literals) if literals else None
        self._triggers = _joined(c.rule.trigger for c in rules if not c.rule.hints and not c.rule.mixed_case)
        self._mixed_triggers = _joined(c.rule.trigger for c in rules if not c.rule.hints and c.rule.mixed_case)
        # The rules to try, with their priorities: all of them once a hint was seen, else only those without hints
        # (none of the others can match a text that holds none of their hints), or only the mixed-case ones.
        self._all = tuple(enumerate(rules))
        self._unhinted = tuple((priority, c) for priority, c in self._all if not c.rule.hints)
        self._mixed = tuple((priority, c) for priority, c in self._unhinted if c.rule.mixed_case)
        self.cached = lru_cache(maxsize=_CACHE_SIZE)(self.scrub_uncached)

    def scrub(self, text: str) -> Scrubbed:
        size = len(text)
        if size < _MIN_CANDIDATE_LEN:
            return None
        if size <= _CACHE_MAX_LEN:
            return self.cached(text)
        return self.scrub_uncached(text)

    def scrub_uncached(self, text: str) -> Scrubbed:
        first = self._pass(text)
        if first is None:
            return None
        # The result is looked at again until a pass finds nothing, so that it scrubs to itself: a match a rule gave
        # up to a shorter one of a rule with priority can hide a later match of its own (the regex does not look
        # inside its own matches again), and a label can end a run that a look-around needed ended (the IPv6
        # address in ``NO9386011117947::1`` once the IBAN before it is a label).  Only a string in which something
        # was replaced gets a second pass.
        new_text, remarks, _spans = first
        for _ in range(_MAX_PASSES - 1):
            again = self._pass(new_text)
            if again is None:
                break
            new_text, new_remarks, spans = again
            remarks = _shifted(remarks, spans) + new_remarks
            remarks.sort(key=lambda r: r.start)
        return new_text, tuple(remarks)

    def _pass(self, text: str) -> tuple[str, list[Remark], list[tuple[int, int, int]]] | None:
        """One pass of the rules: the new text, its remarks and the replaced spans ``(start, end, label length)``;
        None when nothing was found."""
        lowered = text.lower()
        rules = self._screen(text, lowered)
        if not rules:
            return None
        found = _candidates(text, lowered, rules)
        if not found:
            return None
        found.sort()
        pieces: list[str] = []
        remarks: list[Remark] = []
        spans: list[tuple[int, int, int]] = []
        cursor = out_len = 0
        for start, _priority, end, name, label in found:
            if start < cursor:
                continue  # overlaps a replacement already made (earlier start, or same start and higher priority)
            pieces.append(text[cursor:start])
            out_len += start - cursor
            pieces.append(label)
            remarks.append(Remark(name, "s", out_len, out_len + len(label)))
            spans.append((start, end, len(label)))
            out_len += len(label)
            cursor = end
        pieces.append(text[cursor:])
        return "".join(pieces), remarks, spans

    def _screen(self, text: str, lowered: str) -> tuple[tuple[int, _Compiled], ...]:
        """The rules that may match ``text``, with their priorities; empty when none would even run its pattern."""
        if self._unscreened or (self._hints is not None and self._hints.search(lowered) is not None):
            return self._all
        if self._triggers is not None and self._triggers.search(text) is not None:
            return self._unhinted
        if self._mixed_triggers is not None and _mixed_case(text, lowered) and self._mixed_triggers.search(text):
            return self._mixed  # the triggers of the others were just found absent
        return ()


def _shifted(remarks: list[Remark], spans: list[tuple[int, int, int]]) -> list[Remark]:
    """Remarks of a text moved to where they are after the replacements ``spans`` (dropped if one covers them)."""
    out = []
    for remark in remarks:
        shift, covered = 0, False
        for start, end, label_len in spans:
            if end <= remark.start:
                shift += label_len - (end - start)
            elif start >= remark.end:
                break
            else:
                covered = True  # the label itself was replaced
                break
        if not covered:
            out.append(Remark(remark.rule, remark.kind, remark.start + shift, remark.end + shift))
    return out


def _joined(triggers: Iterable[str | None]) -> re.Pattern[str] | None:
    """One regex for several triggers (each once)."""
    unique = list(dict.fromkeys(t for t in triggers if t is not None))
    return re.compile("|".join(f"(?:{t})" for t in unique)) if unique else None


def _mixed_case(text: str, lowered: str) -> bool:
    """Whether ``text`` may hold both an upper- and a lower-case letter (a necessary condition, in C speed)."""
    return text != lowered and text.upper() != text


def _candidates(
    text: str, lowered: str, rules: tuple[tuple[int, _Compiled], ...]
) -> list[tuple[int, int, int, str, str]]:
    """Every match the rules keep: ``(start, priority, end, rule name, label)``."""
    found = []
    mixed: bool | None = None
    shared: dict[re.Pattern[str], list[re.Match[str]]] | None = None
    for priority, c in rules:
        hints = c.rule.hints
        if hints:
            for hint in hints:
                if hint in lowered:
                    break
            else:
                continue
        if c.rule.mixed_case:
            if mixed is None:
                mixed = _mixed_case(text, lowered)
            if not mixed:
                continue
        if c.trigger is not None and c.trigger.search(text) is None:
            continue
        matches: Iterable[re.Match[str]]
        if c.shared:
            if shared is None:
                shared = {}
            found_before = shared.get(c.regex)
            if found_before is None:
                found_before = shared[c.regex] = list(c.regex.finditer(text))
            matches = found_before
        else:
            matches = c.regex.finditer(text)
        mixed_only = c.rule.mixed_case
        for m in matches:
            start, end = m.span("v") if c.has_group else m.span()
            if start == end:
                continue
            if mixed_only:
                candidate = text[start:end]
                if candidate.lower() == candidate or candidate.upper() == candidate:
                    continue  # the rule keeps no single-case match: no need to ask its validator
            if c.validator is not None:
                length = c.validator(text[start:end])
                if length is None:
                    continue
                end = start + length
            found.append((start, priority, end, c.rule.name, c.rule.label))
    return found


_BASE = _compile(tuple(r for r in RULES if r.kind == "value"))
_EMAIL = _compile(OPTIONAL_RULES["scrub_emails"])
_IPS = _compile(OPTIONAL_RULES["scrub_ips"])
# One rule set per combination of (scrub_emails, scrub_ips), in the rules' priority order.
_RULE_SETS: dict[tuple[bool, bool], _RuleSet] = {
    (emails, ips): _RuleSet(_BASE + (_EMAIL if emails else ()) + (_IPS if ips else ()))
    for emails in (False, True)
    for ips in (False, True)
}


def string_scrubber(options: ScrubOptions | None = None) -> Callable[[str], Scrubbed]:
    """The function that scrubs one string under ``options``: ``(new_text, remarks)``, or None when unchanged."""
    if options is None:
        return _RULE_SETS[False, False].scrub
    return _RULE_SETS[bool(options.scrub_emails), bool(options.scrub_ips)].scrub


def scrub_text(text: str, options: ScrubOptions | None = None) -> tuple[str, list[Remark]]:
    """Replace every secret-looking part of ``text``; return the new text and one remark per replacement."""
    result = string_scrubber(options)(text)
    if result is None:
        return text, []
    return result[0], list(result[1])


def clear_cache() -> None:
    """Forget every cached result (for measuring the cost of strings never seen before)."""
    for rule_set in _RULE_SETS.values():
        rule_set.cached.cache_clear()
