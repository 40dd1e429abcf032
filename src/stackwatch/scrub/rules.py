"""The redaction rules, loaded from ``rules.json`` beside this module: the one file of rules that the Python and
the JavaScript engines (``clients/js/src/scrub/``) both read.  This module holds no pattern of its own.

Three kinds of rule (``"rules"`` in the file, in this order: key rules, then value rules by priority):

* ``key`` -- the pattern is a literal substring of the *normalized* key (lower-cased, camelCase split with ``_``,
  ``-``/space/``.`` turned into ``_``); the whole value under the key is replaced with ``[Filtered]``.
* ``key_part`` -- the pattern must equal one whole ``_``-separated part of the normalized key (``pwd`` matches
  ``old_pwd`` and ``oldPwd`` but not ``cwd``).

  Before either kind is matched, a key that is not plain ASCII is folded: NFKC (full-width letters), combining
  marks and invisible format characters removed, and the Cyrillic and Greek letters that look like Latin ones
  mapped to them (``CONFUSABLES``, ``"confusables"`` in the file), so ``pаssword`` with a Cyrillic ``а`` is
  ``password``.  A key rule's pattern is its name unless the file gives a ``pattern``.
* ``value`` -- the pattern is a regular expression searched in every string; the named group ``v`` (or the whole
  match when there is none) is replaced with the rule's label.  An optional validator (see ``validators.py``)
  confirms or trims each candidate.  ``hints`` are lower-case literals of which at least one must occur in the
  lower-cased text before the regex runs at all (a cheap pre-check); an empty list means "always run".
  ``trigger`` is a second, optional pre-check for what hints cannot say (case, runs of digits, a quote after
  ``=``): a regular expression searched in the text itself that matches within every match the rule keeps --
  usually a piece of the pattern without its look-arounds (a prefix, or one part of a sequence); ``about`` says
  why where it is not.  Triggers only decide whether the pattern is worth running; a trigger that missed a match
  the rule would keep would be a bug.  No inline flags in triggers: some are joined into one regex.
  ``mixed_case`` says that every match the rule keeps has both an upper- and a lower-case letter, so the rule is
  skipped for a text without both (a third pre-check, for hex ids and paths).  Rules with the same pattern share
  one search for it (each still validates the matches on its own).

Value rules apply to every string, under any key (the allow-list, ``ALLOWED_KEYS``, only exempts key rules), and
to every key: a key that holds a secret is replaced (see ``event.py``).  ``OPTIONAL_RULES`` are value rules that
apply only when the ``ScrubOptions`` flag of their name is set.

Value rules are listed in priority order: when two candidates overlap, the one starting first wins, and at equal
starts the earlier rule wins.  Labels come from ``"labels"`` (``[Filtered]`` for key rules,
``[Filtered:<name>]`` for value rules); they never match any value rule again (they start with ``[``, which every
value class excludes), which is what makes scrubbing idempotent.

The spelling of patterns.  A pattern (a string, or a list of strings joined without separator) is written in
Python's syntax, restricted to what JavaScript's (with the ``u`` flag) reads alike after these mechanical rewrites,
which the JavaScript loader does: named groups ``(?P<v>...)`` (``(?<v>...)``), the backreference ``(?P=q)``
(``\\k<q>``), ``\\Z`` (``$``), a leading ``(?i)`` or ``(?s)`` (a flag), and Python's Unicode classes spelled out:
``\\b`` (a boundary between Unicode letters/digits/``_`` and the rest), ``\\d`` (``\\p{Nd}``), ``\\s`` (Python's
set of space characters), ``.`` without ``(?s)`` (``[^\\n]``) and, under ``(?i)``, ``i`` (Python also matches ``ı``
and ``İ``).  Not allowed: possessive quantifiers and atomic groups, look-behinds of unbounded length, inline flags
elsewhere than at the start, escapes of characters that need none (a double quote is ``\\x22``: ``\\"`` is an
error in JavaScript).  Before either engine compiles a pattern or trigger, ``{name}`` in it is replaced: by the
word list ``"words"[name]`` written as a trie (``(?=[ab])(?:a...|b...)``, see ``names_pattern``), or by the
piece ``"fragments"[name]`` as it is.  Validators (``card``, ``iban``, ``tokenish``, ``ipv6``,
``basic_credentials``, ``base64_secret``, ``opaque_token``) are code in each engine; their tables (card brands,
IBAN lengths) are ``"validator_data"`` in the file.  ``tests/vectors/scrub.json`` is the contract both engines
pass.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

__all__ = [
    "ALLOWED_KEYS",
    "CONFUSABLES",
    "KEY_LABEL",
    "LIST_PAIRING",
    "OPTIONAL_RULES",
    "PAIR_PARENTS",
    "RULES",
    "VALIDATOR_DATA",
    "Rule",
    "names_pattern",
]

RuleKind = Literal["key", "key_part", "value"]

_KINDS = ("key", "key_part", "value")
_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    kind: RuleKind
    pattern: str
    label: str = "[Filtered]"
    validator: str | None = None
    hints: tuple[str, ...] = ()
    trigger: str | None = None
    mixed_case: bool = False


class RulesFileError(ValueError):
    """``rules.json`` is malformed; the message says where."""


def _escape(ch: str) -> str:
    # Only what is special outside a character class: JavaScript's u flag rejects escapes such as "\-" there.
    return "\\" + ch if ch in "\\.^$*+?()[]{}|/" else ch


def names_pattern(words: list[str]) -> str:
    """``a|b|...`` as a trie after a look-ahead on the first letters (``(?=[ab])(?:a...|b...)``): Python's regex
    engine tries a case-insensitive alternation word by word at every position otherwise, which is slow.  Matches
    exactly the same names.  The JavaScript loader writes the same text (a test compares them)."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        branches = [_escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:  # a word ends here, longer ones go on
            return body + "?" if len(branches) == 1 and len(body) == 2 else f"(?:{body})?"
        return body

    first = "".join(sorted({word[0] for word in words}))
    return f"(?=[{first}])" + emit(trie) if len(first) > 1 else emit(trie)


def _text(value: Any, where: str) -> str:
    """A pattern as the file spells it: a string, or a list of strings to join."""
    if isinstance(value, list) and value and all(isinstance(piece, str) for piece in value):
        return "".join(value)
    if isinstance(value, str) and value:
        return value
    raise RulesFileError(f"{where}: a pattern must be a non-empty string or list of strings")


class _Loader:
    def __init__(self, data: dict[str, Any]) -> None:
        if data.get("format") != 1:
            raise RulesFileError(f"format {data.get('format')!r} is not 1")
        self.data = data
        words = {name: names_pattern(list(w)) for name, w in data["words"].items()}
        fragments = {name: _text(f["pattern"], f"fragment {name}") for name, f in data["fragments"].items()}
        self.pieces = {**words, **fragments}
        self.value_label: str = data["labels"]["value"]
        self.key_label: str = data["labels"]["key"]

    def expand(self, text: str, where: str) -> str:
        def piece(match: re.Match[str]) -> str:
            found = self.pieces.get(match.group(1))
            if found is None:
                raise RulesFileError(f"{where}: no word list or fragment named {match.group(1)!r}")
            return found

        return _PLACEHOLDER.sub(piece, text)

    def rule(self, entry: dict[str, Any]) -> Rule:
        name, kind = entry.get("name"), entry.get("kind")
        if not isinstance(name, str) or kind not in _KINDS:
            raise RulesFileError(f"rule {entry!r}: needs a name and a kind ({', '.join(_KINDS)})")
        if kind != "value":
            return Rule(name=name, kind=kind, pattern=entry.get("pattern", name), label=self.key_label)
        trigger = entry.get("trigger")
        return Rule(
            name=name,
            kind=kind,
            pattern=self.expand(_text(entry.get("pattern"), f"rule {name}"), f"rule {name}"),
            label=self.value_label.replace("{name}", name),
            validator=entry.get("validator"),
            hints=tuple(entry.get("hints", ())),
            trigger=None if trigger is None else self.expand(_text(trigger, f"rule {name}"), f"rule {name} trigger"),
            mixed_case=bool(entry.get("mixed_case", False)),
        )


def _load() -> _Loader:
    text = resources.files(__package__).joinpath("rules.json").read_text(encoding="utf-8")
    return _Loader(json.loads(text))


_FILE = _load()
_DATA = _FILE.data

ALLOWED_KEYS: frozenset[str] = frozenset(_DATA["allowed_keys"]["keys"])
RULES: tuple[Rule, ...] = tuple(_FILE.rule(entry) for entry in _DATA["rules"])
OPTIONAL_RULES: dict[str, tuple[Rule, ...]] = {
    option: tuple(_FILE.rule(entry) for entry in entries)
    for option, entries in _DATA["optional_rules"].items()
    if option != "about"
}
CONFUSABLES: dict[str, str] = {
    ch: latin for script, table in _DATA["confusables"].items() if script != "about" for ch, latin in table.items()
}
KEY_LABEL: str = _FILE.key_label
PAIR_PARENTS: frozenset[str] = frozenset(_DATA["pair_parents"]["keys"])
# ``{"rule": ..., "beside": ..., "item": ...}``: see ``"list_pairing"`` in the file and ``event.py``.
LIST_PAIRING: dict[str, str] = {k: v for k, v in _DATA["list_pairing"].items() if k != "about"}
VALIDATOR_DATA: dict[str, Any] = _DATA["validator_data"]
