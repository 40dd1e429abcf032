"""Project grouping rules: stack trace rules and fingerprint rules, parsed from text.

Stack trace rules (``path:**/vendor/** -app``, ``function:std::* -group``) say which frames are in-app and which
count for grouping; fingerprint rules (``error.type:DatabaseUnavailable -> database-down``) give matching events
a fingerprint. Both are lines of text a project keeps in its settings; ``ProjectRules.parse`` reads them once per
text and raises ``RuleError`` (with the 1-based line) for a line it cannot read. The built-in rules of grouping
version 2 (grouping/builtin.py) are written in the same stack trace rule format and read by the same parser.
The syntax is documented in docs/grouping.md, "Project rules"; fingerprint rules are applied by fingerprints.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from stackwatch.server.digest.grouping.families import FAMILIES
from stackwatch.server.digest.grouping.frames import FrameView

__all__ = ["EMPTY", "VARIABLE", "FingerprintRule", "ProjectRules", "RuleError", "apply_stack_rules", "frame_matches"]

STACK_MATCHERS = ("path", "function", "module", "package", "family", "app")
EVENT_MATCHERS = ("error.type", "error.value", "message", "logger", "level", "release")
FRAME_MATCHERS = ("path", "function", "module", "family")
ACTIONS = {"+app": ("app", True), "-app": ("app", False), "+group": ("group", True), "-group": ("group", False)}
VARIABLES = ("default", "error.type", "error.value", "transaction", "level", "logger", "function", "module")
# Paths and free text match whatever their case; names (types, functions, modules, tags) match exactly.
_FOLDED = {"path", "package", "error.value", "message"}
_PATHLIKE = {"path", "package"}

_TOKEN = re.compile(
    r"""\s+
    |(?P<comment>\#.*)
    |(?P<matcher>(?P<negated>!)?(?P<key>[A-Za-z_][\w.-]*):(?P<value>"(?:[^"\\]|\\.)*"?|[^\s"]*))
    |(?P<action>[+-][A-Za-z]+)
    |(?P<arrow>->)
    |(?P<other>\S+)""",
    re.VERBOSE,
)
_PART = re.compile(r"""(?:"(?:[^"\\]|\\.)*"|\{\{[^{}]*\}\}|[^\s,"{}])+|(?P<bad>"|\{\{|\}\}|[{}])""")
VARIABLE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


class RuleError(ValueError):
    def __init__(self, kind: str, line: int, message: str) -> None:
        super().__init__(f"{kind} rules, line {line}: {message}")
        self.kind = kind
        self.line = line
        self.message = message


def _glob(pattern: str, key: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """``**`` crosses ``/``; in paths ``*`` and ``?`` stay within one segment, elsewhere they match anything."""
    if key in _PATHLIKE:
        pattern = pattern.replace("\\", "/")
    out, index = [], 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        else:
            char = pattern[index]
            if char == "*":
                out.append("[^/]*" if key in _PATHLIKE else ".*")
            elif char == "?":
                out.append("[^/]" if key in _PATHLIKE else ".")
            else:
                out.append(re.escape(char))
            index += 1
    body = "".join(out)
    flags = re.IGNORECASE if key in _FOLDED else 0
    # One pattern for one value, one for any line of a frame's values joined by newlines (a single search).
    return re.compile(body + r"\Z", flags | re.DOTALL), re.compile(f"^(?:{body})$", flags | re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Matcher:
    key: str
    value: str
    negated: bool
    pattern: re.Pattern[str] | None  # None for ``family`` and ``app``, which compare names
    lines: re.Pattern[str] | None = None
    names: frozenset[str] = frozenset()

    def test(self, values: Sequence[str]) -> bool:
        """Whether any of the values matches (or, negated, none does)."""
        if self.pattern is None:
            hit = any(value in self.names for value in values)
        else:
            match = self.pattern.match
            hit = any(match(value) for value in values)
        return hit != self.negated

    def test_frame(self, view: FrameView, in_app: bool | None) -> bool:
        if self.lines is None:
            value = view.family if self.key == "family" else ("yes" if in_app is True else "no")
            return (value in self.names) != self.negated
        return (self.lines.search(view.texts[self.key]) is not None) != self.negated


def frame_matches(matchers: Sequence[Matcher], view: FrameView, in_app: bool | None) -> bool:
    return all(matcher.test_frame(view, in_app) for matcher in matchers)


@dataclass(frozen=True, slots=True)
class StackRule:
    matchers: tuple[Matcher, ...]
    actions: tuple[tuple[str, bool], ...]
    families: frozenset[str] | None  # from a plain ``family:`` matcher: lets most rules be skipped cheaply

    def matches(self, view: FrameView, in_app: bool | None) -> bool:
        if self.families is not None and view.family not in self.families:
            return False
        return frame_matches(self.matchers, view, in_app)


@dataclass(frozen=True, slots=True)
class FingerprintRule:
    event_matchers: tuple[Matcher, ...]
    frame_matchers: tuple[Matcher, ...]
    parts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProjectRules:
    stack_text: str = ""
    fingerprint_text: str = ""
    stack_rules: tuple[StackRule, ...] = ()
    fingerprint_rules: tuple[FingerprintRule, ...] = ()
    # The stack rules that can match a frame of each family.
    by_family: dict[str, tuple[StackRule, ...]] = field(default_factory=dict, compare=False, repr=False)

    @staticmethod
    def parse(stack_text: str | None, fingerprint_text: str | None) -> ProjectRules:
        return _parse(stack_text or "", fingerprint_text or "")


def _unquote(value: str) -> str:
    """A quoted value without its quotes; ``\\"`` is a quote, other backslashes stay (Windows paths)."""
    if value.startswith('"'):
        return value[1:-1].replace('\\"', '"')
    return value


def _matcher(kind: str, number: int, match: re.Match[str], known: Sequence[str]) -> Matcher:
    key, raw, negated = match["key"], match["value"], bool(match["negated"])
    value = _unquote(raw)
    if key not in known and not (kind == "fingerprint" and key.startswith("tags.") and len(key) > 5):
        names = ", ".join(f"{name}:" for name in known) + (", tags.NAME:" if kind == "fingerprint" else "")
        raise RuleError(kind, number, f"unknown matcher {key}: (known: {names})")
    if not value:
        raise RuleError(kind, number, f"{key}: needs a value")
    if key == "family":
        unknown = sorted(set(value.split(",")) - FAMILIES)
        if unknown:
            raise RuleError(kind, number, f"unknown family {unknown[0]!r} (known: {', '.join(sorted(FAMILIES))})")
        return Matcher(key, value, negated, None, None, frozenset(value.split(",")))
    if key == "app":
        if value not in ("yes", "no"):
            raise RuleError(kind, number, "app: takes yes or no")
        return Matcher(key, value, negated, None, None, frozenset([value]))
    return Matcher(key, value, negated, *_glob(value, key))


def _tokens(kind: str, number: int, line: str) -> tuple[list[re.Match[str]], int | None]:
    """The matchers and actions of a line up to its comment or its ``->`` (quoted values may hold either), and
    where the text after the ``->`` starts (``None``: there is none)."""
    tokens: list[re.Match[str]] = []
    for match in _TOKEN.finditer(line):
        if match["comment"]:
            break
        if match["arrow"]:
            return tokens, match.end()
        value = match["value"] or ""
        if value.startswith('"') and (len(value) < 2 or not value.endswith('"') or value.endswith('\\"')):
            raise RuleError(kind, number, f"unclosed quote in {match['key']}:")
        if match["other"]:
            if match["other"].startswith('"'):
                raise RuleError(kind, number, "unclosed quote")
            if kind == "fingerprint" and not any(m["arrow"] for m in _TOKEN.finditer(line, match.start())):
                raise RuleError(kind, number, "missing '->' between the matchers and the fingerprint")
            raise RuleError(kind, number, f"{match['other']!r} is neither a matcher (name:value) nor an action")
        if not match[0].isspace():
            tokens.append(match)
    return tokens, None


def _stack_rule(number: int, line: str) -> StackRule | None:
    kind = "stack trace"
    tokens, fingerprint = _tokens(kind, number, line)
    if fingerprint is not None:
        raise RuleError(kind, number, "'->' belongs in fingerprint rules; stack trace rules end in actions")
    if not tokens:
        return None
    matchers, actions = [], []
    for token in tokens:
        if token["action"]:
            if token["action"] not in ACTIONS:
                raise RuleError(kind, number, f"unknown action {token['action']} (known: {', '.join(ACTIONS)})")
            actions.append(ACTIONS[token["action"]])
        elif actions:
            raise RuleError(kind, number, "matchers come before the actions")
        else:
            matchers.append(_matcher(kind, number, token, STACK_MATCHERS))
    if not matchers:
        raise RuleError(kind, number, "a rule needs at least one matcher before its actions")
    if not actions:
        raise RuleError(kind, number, "a rule needs an action: +app, -app, +group or -group")
    families = [m for m in matchers if m.key == "family" and not m.negated]
    allowed = frozenset(families[0].value.split(",")) if families else None
    return StackRule(tuple(matchers), tuple(actions), allowed)


def _parts(number: int, text: str) -> tuple[str, ...]:
    kind = "fingerprint"
    parts = []
    for match in _PART.finditer(text):
        if match[0].startswith("#"):
            break  # a comment (a quoted part may hold a #)
        if match["bad"]:
            problem = "unclosed quote" if match["bad"] == '"' else f"unbalanced {match['bad']!r}"
            raise RuleError(kind, number, problem)
        part = re.sub(r'"((?:[^"\\]|\\.)*)"', lambda m: _unquote(f'"{m[1]}"'), match[0])
        for variable in VARIABLE.findall(part):
            if variable not in VARIABLES:
                known = ", ".join(f"{{{{ {name} }}}}" for name in VARIABLES)
                raise RuleError(kind, number, f"unknown variable {{{{ {variable} }}}} (known: {known})")
        parts.append(part)
    if not parts:
        raise RuleError(kind, number, "nothing after '->': a rule needs at least one fingerprint part")
    return tuple(parts)


def _fingerprint_rule(number: int, line: str) -> FingerprintRule | None:
    kind = "fingerprint"
    tokens, right = _tokens(kind, number, line)
    if not tokens and right is None:
        return None  # empty, or a comment
    if right is None:
        raise RuleError(kind, number, "missing '->' between the matchers and the fingerprint")
    if not tokens:
        raise RuleError(kind, number, "nothing before '->': a rule needs at least one matcher")
    event: list[Matcher] = []
    frame: list[Matcher] = []
    for token in tokens:
        if token["action"]:
            raise RuleError(kind, number, f"{token['action']} is a stack trace rule action")
        matcher = _matcher(kind, number, token, (*EVENT_MATCHERS, *FRAME_MATCHERS))
        (frame if matcher.key in FRAME_MATCHERS else event).append(matcher)
    return FingerprintRule(tuple(event), tuple(frame), _parts(number, line[right:]))


@lru_cache(maxsize=256)
def _parse(stack_text: str, fingerprint_text: str) -> ProjectRules:
    stack = [_stack_rule(n, line) for n, line in enumerate(stack_text.splitlines(), start=1)]
    prints = [_fingerprint_rule(n, line) for n, line in enumerate(fingerprint_text.splitlines(), start=1)]
    stack_rules = tuple(rule for rule in stack if rule is not None)
    by_family = {
        family: tuple(rule for rule in stack_rules if rule.families is None or family in rule.families)
        for family in FAMILIES
    }
    return ProjectRules(
        stack_text, fingerprint_text, stack_rules, tuple(rule for rule in prints if rule is not None), by_family
    )


EMPTY = ProjectRules()


# --- applying stack trace rules ---------------------------------------------------------------------------


def apply_stack_rules(
    view: FrameView, builtin: ProjectRules, rules: ProjectRules, fixed: ProjectRules = EMPTY
) -> tuple[bool | None, bool]:
    """The frame's in-app flag and whether it counts for grouping.

    The SDK's ``in_app`` wins over the ``builtin`` rules (they only guess where the SDK did not say); the
    ``fixed`` rules hold whatever the SDK said, and the project's rules come last and win over all. Within each
    list a later line wins.
    """
    sdk = view.sdk_in_app
    in_app, group = _apply(builtin, view, sdk, True, may_set_app=sdk is None)
    for source in (fixed, rules):
        if source.by_family.get(view.family) if source.by_family else source.stack_rules:
            in_app, group = _apply(source, view, in_app, group, may_set_app=True)
    return in_app, group


# What a list of rules gave a frame, by the list's text and what the rules read of the frame: one bounded memory
# for every project, emptied when full (a few MB).
SEEN: dict[tuple[Any, ...], tuple[bool | None, bool]] = {}
_MAX_SEEN = 50_000


def _apply(
    rules: ProjectRules, view: FrameView, in_app: bool | None, group: bool, *, may_set_app: bool
) -> tuple[bool | None, bool]:
    """One list of rules over one frame, remembered by what the rules can read: frames repeat from event to event."""
    # Rules made by ``parse`` are known by their text; any others are not remembered.
    key = (rules.stack_text, view.key, in_app, group, may_set_app) if rules.stack_text else None
    found = SEEN.get(key) if key else None
    if found is not None:
        return found
    candidates = rules.by_family.get(view.family, rules.stack_rules) if rules.by_family else rules.stack_rules
    for rule in candidates:
        if not rule.matches(view, in_app):
            continue
        for action, value in rule.actions:
            if action == "group":
                group = value
            elif may_set_app:
                in_app = value
    if key:
        if len(SEEN) >= _MAX_SEEN:
            SEEN.clear()
        SEEN[key] = (in_app, group)
    return in_app, group
