"""The issue search syntax, one parser for the REST API's ``query`` and the dashboard's search box.

Three steps, each testable alone:

* ``parse(text)`` reads the text into a :class:`Search`: a tuple of :class:`Term`, each a field, its values (any of
  them matches), whether it is negated and where it starts. Everything that can be wrong with the text alone (an
  unclosed quote, an unknown ``is:`` value or level, an empty value) is a :class:`SearchError` naming the problem
  and its position, counted from 1.
* ``Search.emails()`` names the users that ``assigned:`` terms refer to, so that the caller looks them up once
  (``api.queries.searcher``) and gives them back as a :class:`Searcher` with the current user.
* ``conditions(search, searcher)`` turns the terms into SQL conditions on ``issues``; they are ANDed.

Event attributes (environment, release, component, workflow, step, tenant and any tag) match through the tag facets
(``issue_tags``): an issue matches when any of its events had the value; the (key, value, issue) index finds the
issues of a value. Users match through ``issue_impact``, which counts them, by its primary key (issue, kind,
value); workflow runs through the events' ``run_id`` index. So every term is an index look-up (``docs/api.md``
has the plans).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, and_, exists, false, func, not_, or_, select, true

from stackwatch.server.storage.schema import LEVELS, events, issue_impact, issue_tags, issues

__all__ = ["MAX_QUERY", "Search", "SearchError", "Searcher", "Term", "conditions", "parse"]

MAX_QUERY = 2000  # characters: far more than anyone types, few enough to keep a query's SQL small
MAX_TERMS = 50

IS_VALUES = ("unresolved", "resolved", "ignored", "assigned", "unassigned", "regressed")
STATUSES = ("unresolved", "resolved", "ignored")
# Fields held in issue_tags, by the key the search uses; ``workflow_id`` and ``step_id`` are tags as well.
TAG_FIELDS = {
    "environment": "environment",
    "release": "release",
    "component": "component",
    "workflow": "workflow_id",
    "workflow_id": "workflow_id",
    "step": "step_id",
    "step_id": "step_id",
    "tenant": "tenant",
}
# Fields not in the tags: users (issue_impact, which counts them) and workflow runs (the events' run_id).
IMPACT_FIELDS = {"user": "user", "run": "run", "run_id": "run"}
# ``has:`` names these fields, or any tag key.
HAS_FIELDS = {**{name: ("tag", key) for name, key in TAG_FIELDS.items()}, "assignee": ("assignee", "")}
HAS_FIELDS |= {"user": ("impact", "user"), "run": ("impact", "run"), "run_id": ("impact", "run")}
HAS_FIELDS |= {"workflow": ("impact", "workflow"), "tenant": ("impact", "tenant")}
FIELDS = ("is", "level", "assigned", "has", *TAG_FIELDS, *IMPACT_FIELDS)
USER_PREFIXES = ("id", "email", "username", "ip")  # the identities of a user_key (digest.normalize)

_KEY = re.compile(r"(?:tags\[(?P<tag>[^\]\s]+)\]|(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)):")


class SearchError(ValueError):
    """What is wrong with a search, and where: ``position`` counts characters from 1."""

    def __init__(self, problem: str, position: int) -> None:
        super().__init__(f"{problem} (at position {position})")
        self.problem = problem
        self.position = position


@dataclass(frozen=True, slots=True)
class Term:
    """One condition: ``field`` is ``text`` (free text), ``tag`` (``name`` is the tag key) or one of ``FIELDS``;
    the issue matches when any of ``values`` does (and, ``negated``, when none does)."""

    field: str
    values: tuple[str, ...]
    negated: bool = False
    position: int = 1
    name: str = ""


@dataclass(frozen=True, slots=True)
class Search:
    terms: tuple[Term, ...] = ()

    def emails(self) -> set[str]:
        """The email addresses ``assigned:`` terms name (lower case, as users are stored)."""
        return {
            value.lower()
            for term in self.terms
            if term.field == "assigned"
            for value in term.values
            if value.lower() not in ("me", "none")
        }

    def names_status(self) -> bool:
        """Whether a term says which statuses to show (``is:resolved``): the dashboard's status menu yields to it."""
        return any(term.field == "is" and set(term.values) & set(STATUSES) for term in self.terms)


@dataclass(frozen=True, slots=True)
class Searcher:
    """Who searches (``assigned:me``; ``None``: nobody, such as an API token of no user) and the ids of the users
    the search names by email (``Search.emails``); a name missing here is an unknown user."""

    user_id: int | None = None
    users: Mapping[str, int] = field(default_factory=dict)


# --- parse ------------------------------------------------------------------------------------------------------


def parse(text: str | None) -> Search:
    """The terms of ``text``; :class:`SearchError` when it is not a valid search."""
    text = text or ""
    if len(text) > MAX_QUERY:
        raise SearchError(f"the search is longer than {MAX_QUERY} characters", MAX_QUERY + 1)
    terms: list[Term] = []
    i = _skip_space(text, 0)
    while i < len(text):
        term, i = _term(text, i)
        terms.append(term)
        if len(terms) > MAX_TERMS:
            raise SearchError(f"more than {MAX_TERMS} terms", term.position)
        i = _skip_space(text, i)
    return Search(_phrases(terms))


def _term(text: str, start: int) -> tuple[Term, int]:
    """The term that starts at ``start`` and where it ends; a plain word is a ``word`` term (see ``_phrases``)."""
    negated = text[start] == "-" and start + 1 < len(text) and not text[start + 1].isspace()
    i = start + negated
    key = _KEY.match(text, i)
    if key is not None and _pasted_title(text, key):
        key = None  # ``TypeError: Cannot read …`` pasted from an issue title is text, not a tag with no value
    if key is not None:
        values, end = _values(text, key.end(), key.group(0))
        return _field_term(key.group("key"), key.group("tag"), values, negated, start), end
    if text[i] == '"':
        value, end = _quoted(text, i)
        if not value.strip():
            raise SearchError("empty quoted text", i + 1)
        return Term("text", (value,), negated, start + 1), end
    end = _word_end(text, i)
    return Term("text" if negated else "word", (text[i:end],), negated, start + 1), end


def _pasted_title(text: str, key: re.Match[str]) -> bool:
    """A word that is not a search field, ending in a colon followed by a space or the end: the ``Type:`` of an
    issue title (a field with nothing after its colon is still refused, with its name)."""
    name = key.group("key")
    followed = key.end() >= len(text) or text[key.end()].isspace()
    return followed and key.group("tag") is None and name is not None and name.lower() not in FIELDS


def _phrases(terms: list[Term]) -> tuple[Term, ...]:
    """Consecutive plain words as one free-text phrase, so that ``connection refused`` searches what it did before
    the search had a syntax: the whole text as one substring."""
    joined: list[Term] = []
    for term in terms:
        if term.field == "word" and joined and joined[-1].field == "word":
            joined[-1] = Term("word", (f"{joined[-1].values[0]} {term.values[0]}",), False, joined[-1].position)
        else:
            joined.append(term)
    return tuple(Term("text", term.values, False, term.position) if term.field == "word" else term for term in joined)


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _word_end(text: str, i: int) -> int:
    while i < len(text) and not text[i].isspace():
        i += 1
    return i


def _quoted(text: str, i: int) -> tuple[str, int]:
    """The value of the quoted string at ``i`` (``\\"`` and ``\\\\`` escape) and where it ends."""
    value: list[str] = []
    j = i + 1
    while j < len(text):
        char = text[j]
        if char == "\\" and j + 1 < len(text) and text[j + 1] in '"\\':
            value.append(text[j + 1])
            j += 2
            continue
        if char == '"':
            return "".join(value), j + 1
        value.append(char)
        j += 1
    raise SearchError("unclosed quote", i + 1)


def _values(text: str, i: int, key: str) -> tuple[list[tuple[str, int]], int]:
    """The comma-separated values after ``key:`` (each bare or quoted) with their positions, and where they end."""
    values: list[tuple[str, int]] = []
    while True:
        at = i
        if i < len(text) and text[i] == '"':
            value, i = _quoted(text, i)
            if i < len(text) and not text[i].isspace() and text[i] != ",":
                raise SearchError(f"a space or a comma must follow the closing quote of {key}", i + 1)
        else:
            end = i
            while end < len(text) and not text[end].isspace() and text[end] != ",":
                end += 1
            value, i = text[i:end], end
        if not value.strip():
            hint = "; to search for text with a colon, quote it" if len(values) == 0 else ""
            raise SearchError(f"empty value for {key}{hint}", at + 1)
        values.append((value, at + 1))
        if i < len(text) and text[i] == ",":
            i += 1
            continue
        return values, i


def _field_term(key: str | None, tag: str | None, values: list[tuple[str, int]], negated: bool, start: int) -> Term:
    position = start + 1
    texts = tuple(value for value, _ in values)
    if tag is not None:
        return Term("tag", texts, negated, position, tag)
    assert key is not None
    name = key.lower()
    if name not in FIELDS:
        return Term("tag", texts, negated, position, key)
    if name == "is":
        _check(values, IS_VALUES, "is: value")
        texts = tuple(value.lower() for value in texts)
    elif name == "level":
        _check(values, LEVELS, "level")
        texts = tuple(value.lower() for value in texts)
    elif name == "has":
        for value, at in values:
            if not _KEY.match(value + ":"):
                raise SearchError(f"has: needs a field name or a tag key, not {value!r}", at)
    return Term(name, texts, negated, position)


def _check(values: list[tuple[str, int]], allowed: tuple[str, ...], what: str) -> None:
    for value, at in values:
        if value.lower() not in allowed:
            raise SearchError(f"unknown {what} {value!r}; use one of {', '.join(allowed)}", at)


# --- SQL --------------------------------------------------------------------------------------------------------


def conditions(search: Search, searcher: Searcher) -> list[ColumnElement[bool]]:
    """The SQL conditions on ``issues`` of each term, to AND; :class:`SearchError` for a user that does not exist
    and for ``assigned:me`` when nobody searches."""
    found: list[ColumnElement[bool]] = []
    for term in search.terms:
        condition = _condition(term, searcher)
        found.append(not_(condition) if term.negated else condition)
    return found


def _condition(term: Term, searcher: Searcher) -> ColumnElement[bool]:
    if term.field == "text":
        return _text(term.values[0])
    if term.field == "is":
        return or_(*(_is(value) for value in term.values))
    if term.field == "level":
        return issues.c.level.in_(term.values)
    if term.field == "assigned":
        return _assigned(term, searcher)
    if term.field == "has":
        return or_(*(_has(value) for value in term.values))
    if term.field == "user":
        return _user(term.values)
    if term.field in IMPACT_FIELDS:
        return _run(term.values)
    return _tag(TAG_FIELDS.get(term.field, term.name), term.values)


def _text(value: str) -> ColumnElement[bool]:
    """A substring of the title or the culprit, whatever the case; ``%`` and ``_`` are themselves."""
    pattern = "%" + value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return or_(
        func.lower(issues.c.title).like(pattern, escape="\\"), func.lower(issues.c.culprit).like(pattern, escape="\\")
    )


def _is(value: str) -> ColumnElement[bool]:
    if value in STATUSES:
        return issues.c.status == value
    if value == "assigned":
        return issues.c.assignee_id.is_not(None)
    if value == "unassigned":
        return issues.c.assignee_id.is_(None)
    # Regressed, and not resolved since: a regression clears resolved_at, a later resolution sets it again.
    return and_(
        issues.c.regressed_at.is_not(None),
        or_(issues.c.resolved_at.is_(None), issues.c.resolved_at < issues.c.regressed_at),
    )


def _assigned(term: Term, searcher: Searcher) -> ColumnElement[bool]:
    ids: list[int] = []
    nobody = False
    for value in term.values:
        wanted = value.lower()
        if wanted == "none":
            nobody = True
        elif wanted == "me":
            if searcher.user_id is None:
                raise SearchError("assigned:me needs a user, and this API token belongs to none", term.position)
            ids.append(searcher.user_id)
        elif wanted in searcher.users:
            ids.append(searcher.users[wanted])
        else:
            raise SearchError(f"assigned: no user {value!r}", term.position)
    # Never NULL, so that a negated term keeps the unassigned issues: NOT (NULL IN (...)) would drop them.
    someone = and_(issues.c.assignee_id.is_not(None), issues.c.assignee_id.in_(ids)) if ids else false()
    return or_(issues.c.assignee_id.is_(None), someone) if nobody else someone


def _has(name: str) -> ColumnElement[bool]:
    kind, key = HAS_FIELDS.get(name.lower(), ("tag", name))
    if kind == "assignee":
        return issues.c.assignee_id.is_not(None)
    if kind == "impact":
        return exists().where(issue_impact.c.issue_id == issues.c.id, issue_impact.c.kind == key)
    if key == "level":
        return true()
    return exists().where(issue_tags.c.issue_id == issues.c.id, issue_tags.c.key == key)


def _tag(key: str, values: tuple[str, ...]) -> ColumnElement[bool]:
    """Issues with the tag values, read once from the (key, value, issue) index: SQLite makes the list first and
    then goes through the project's issues in the page's order, instead of a look-up for each issue (33 ms for a
    rare workflow among 10,000 issues, 2 ms as a list)."""
    return issues.c.id.in_(select(issue_tags.c.issue_id).where(issue_tags.c.key == key, issue_tags.c.value.in_(values)))


def _run(values: tuple[str, ...]) -> ColumnElement[bool]:
    """Issues with stored events of the runs: the events' ``run_id`` index finds them, as for the run page; no index
    of issue_impact leads from a run to its issues."""
    return issues.c.id.in_(select(events.c.issue_id).where(events.c.run_id.in_(values)))


def _user(values: tuple[str, ...]) -> ColumnElement[bool]:
    """Issues that saw one of the users. No index leads from a user to its issues, so this is a look-up in
    issue_impact's primary key for each issue, in the list's order, up to the page's end. ``OFFSET 0`` keeps
    PostgreSQL from turning the ``EXISTS`` into a join, for which it reads all of issue_impact (75 ms at 330,000 rows,
    and growing with them) rather than 10,000 look-ups."""
    keys = sorted({key for value in values for key in _user_keys(value)})
    found = (
        select(issue_impact.c.issue_id)
        .where(issue_impact.c.issue_id == issues.c.id, issue_impact.c.kind == "user", issue_impact.c.value.in_(keys))
        .offset(0)
    )
    return found.exists()


def _user_keys(value: str) -> list[str]:
    """The stored identities a ``user:`` value can be: itself when it names its kind (``email:a@b.c``), else the
    value as any kind (``42`` as the id 42, the username 42, ...)."""
    kind, _, rest = value.partition(":")
    if kind in USER_PREFIXES and rest:
        return [value]
    return [f"{prefix}:{value}" for prefix in USER_PREFIXES]
