"""The search parser alone (``server/search.py``): the terms a text reads as, and the errors with their positions.
What the terms find is tested through the REST API, on both backends (``test_search_api.py``)."""

from __future__ import annotations

import pytest

from stackwatch.server import search
from stackwatch.server.search import Search, Searcher, SearchError, Term, parse


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("", ()),
        ("is:unresolved", (Term("is", ("unresolved",)),)),
        ("Level:ERROR,fatal", (Term("level", ("error", "fatal")),)),
        (
            'release:"web app@1.2" -component:api',
            (Term("release", ("web app@1.2",)), Term("component", ("api",), True, 23)),
        ),
        ('release:"a,b",c', (Term("release", ("a,b", "c")),)),
        (r'release:"say \"hi\" \\o/"', (Term("release", ('say "hi" \\o/',)),)),
        ("connection  refused", (Term("text", ("connection refused",)),)),
        (
            "a level:error b",
            (Term("text", ("a",)), Term("level", ("error",), False, 3), Term("text", ("b",), False, 15)),
        ),
        ("a -b c", (Term("text", ("a",)), Term("text", ("b",), True, 3), Term("text", ("c",), False, 6))),
        ('"a: b" c', (Term("text", ("a: b",)), Term("text", ("c",), False, 8))),
        ("- a", (Term("text", ("- a",)),)),  # a dash alone is text
        ("region:eu", (Term("tag", ("eu",), name="region"),)),
        ("tags[level]:error", (Term("tag", ("error",), name="level"),)),
        ("Region:eu", (Term("tag", ("eu",), name="Region"),)),  # tag keys keep their case
        ("http://host/x", (Term("tag", ("//host/x",), name="http"),)),
        ("f(x):y", (Term("text", ("f(x):y",)),)),  # not a key: text
        ("has:release,region", (Term("has", ("release", "region")),)),
        ("user:email:a@b.c", (Term("user", ("email:a@b.c",)),)),
    ],
)
def test_terms(text: str, terms: tuple[Term, ...]) -> None:
    assert parse(text) == Search(terms)


@pytest.mark.parametrize(
    ("text", "problem", "position"),
    [
        ("is:fixed", "unknown is: value 'fixed'", 4),
        ("level:error,loud", "unknown level 'loud'", 13),
        ('a "b', "unclosed quote", 3),
        ('release:x,"y', "unclosed quote", 11),
        ("level:", "empty value for level:", 7),
        ("level:,error", "empty value for level:", 7),
        ('level:" "', "empty value for level:", 7),
        ('level:"error"x', "a space or a comma must follow the closing quote of level:", 14),
        ('-""', "empty quoted text", 2),
    ],
)
def test_errors_name_the_problem_and_where(text: str, problem: str, position: int) -> None:
    with pytest.raises(SearchError) as raised:
        parse(text)
    assert raised.value.problem.startswith(problem)
    assert raised.value.position == position
    assert str(raised.value).endswith(f"(at position {position})")


def test_emails_and_statuses() -> None:
    found = parse("assigned:me,Ops@Example.com -assigned:none,dev@example.com is:assigned")
    assert found.emails() == {"ops@example.com", "dev@example.com"}
    assert not found.names_status()
    assert parse("-is:resolved").names_status() and parse("is:regressed,ignored").names_status()


def test_conditions_need_the_users_the_search_names() -> None:
    found = parse("assigned:ops@example.com")
    with pytest.raises(SearchError, match=r"assigned: no user 'ops@example\.com'"):
        search.conditions(found, Searcher(1))
    assert len(search.conditions(found, Searcher(1, {"ops@example.com": 7}))) == 1
    with pytest.raises(SearchError, match="assigned:me needs a user"):
        search.conditions(parse("level:error assigned:me"), Searcher(None))


def test_the_public_surface() -> None:
    assert sorted(search.__all__) == ["MAX_QUERY", "Search", "SearchError", "Searcher", "Term", "conditions", "parse"]
