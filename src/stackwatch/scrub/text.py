"""Scrubbing of a single string with the value rules."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from stackwatch.scrub.rules import OPTIONAL_RULES, RULES, Rule
from stackwatch.scrub.validators import VALIDATORS, Validator

__all__ = ["Remark", "ScrubOptions", "scrub_text"]


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


@dataclass(frozen=True, slots=True)
class _Compiled:
    rule: Rule
    regex: re.Pattern[str]
    validator: Validator | None
    has_group: bool


def _compile(rules: tuple[Rule, ...]) -> tuple[_Compiled, ...]:
    out = []
    for rule in rules:
        regex = re.compile(rule.pattern)
        validator = VALIDATORS[rule.validator] if rule.validator else None
        out.append(_Compiled(rule, regex, validator, "v" in regex.groupindex))
    return tuple(out)


_BASE = _compile(tuple(r for r in RULES if r.kind == "value"))
_EMAIL = _compile(OPTIONAL_RULES["scrub_emails"])
_IPS = _compile(OPTIONAL_RULES["scrub_ips"])
# Every rule needs at least a few characters; shorter strings skip all regex work.
_MIN_CANDIDATE_LEN = 6


def _active(options: ScrubOptions) -> tuple[_Compiled, ...]:
    active = _BASE
    if options.scrub_emails:
        active += _EMAIL
    if options.scrub_ips:
        active += _IPS
    return active


def _candidates(text: str, lowered: str, rules: tuple[_Compiled, ...]) -> list[tuple[int, int, int, str, str]]:
    found = []
    for priority, c in enumerate(rules):
        if c.rule.hints and not any(h in lowered for h in c.rule.hints):
            continue
        for m in c.regex.finditer(text):
            start, end = m.span("v") if c.has_group else m.span()
            if start == end:
                continue
            if c.validator is not None:
                length = c.validator(text[start:end])
                if length is None:
                    continue
                end = start + length
            found.append((start, priority, end, c.rule.name, c.rule.label))
    return found


def scrub_text(text: str, options: ScrubOptions | None = None) -> tuple[str, list[Remark]]:
    """Replace every secret-looking part of ``text``; return the new text and one remark per replacement."""
    if len(text) < _MIN_CANDIDATE_LEN:
        return text, []
    found = _candidates(text, text.lower(), _active(options or ScrubOptions()))
    if not found:
        return text, []
    found.sort()
    pieces: list[str] = []
    remarks: list[Remark] = []
    cursor = out_len = 0
    for start, _priority, end, name, label in found:
        if start < cursor:
            continue  # overlaps a replacement already made (earlier start, or same start and higher priority)
        pieces.append(text[cursor:start])
        out_len += start - cursor
        pieces.append(label)
        remarks.append(Remark(name, "s", out_len, out_len + len(label)))
        out_len += len(label)
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces), remarks
