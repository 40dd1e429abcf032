"""The search box and the saved searches of the dashboard's issue list (both backends)."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from markupsafe import escape
from sqlalchemy import update
from starlette.testclient import TestClient

from stackwatch.server.storage.schema import issues
from tests.conftest import Stack
from tests.support import foreign_markup
from tests.test_web_auth import add_user, csrf_of, login
from tests.test_web_issues import LIST, SCRIPT, _send_issues, rows

SAVED = f"{LIST}/saved-searches"


@pytest.fixture
def ids(stack: Stack) -> dict[str, int]:
    """Issues a (error), b (warning), c (fatal, its value a script) of ``test_web_issues``; a is assigned to the
    logged-in ops@example.com."""
    ops = add_user(stack, "ops@example.com", admin=True)
    login(stack.client, "ops@example.com")
    found = _send_issues(stack)
    with stack.services.engine.begin() as connection:
        connection.execute(update(issues).where(issues.c.id == found["a"]).values(assignee_id=ops))
    return found


def listed(client: TestClient, **params: str) -> httpx.Response:
    return client.get(f"{LIST}?{urlencode(params)}")


def saved_links(page: httpx.Response) -> list[tuple[str, str]]:
    """(href, name) of each saved search the page lists."""
    return [
        (html.unescape(href), html.unescape(name))
        for href, name in re.findall(r'<a class="saved-search" href="([^"]*)">([^<]*)</a>', page.text)
    ]


def _query_of(href: str) -> str:
    """The search a link of the list leads to."""
    parts = urlsplit(href)
    assert parts.path == LIST, href
    [query] = parse_qs(parts.query)["query"]
    return query


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("level:fatal", ["c"]),
        ("level:error,warning", ["b", "a"]),
        ("-level:error", ["b", "c"]),
        ("component:billing release:1.0", ["a", "c"]),
        ("workflow:wf-2", ["b"]),
        ("run:r9", ["c"]),
        ("user:u1", ["a"]),
        ("assigned:me", ["a"]),  # the logged-in user
        ("-assigned:me", ["b", "c"]),
        ("has:user", ["a", "c"]),
        ("keyerror", ["b"]),
        ('"missing b" environment:staging', ["b"]),
    ],
)
def test_the_search_box_filters(stack: Stack, ids: dict[str, int], query: str, expected: list[str]) -> None:
    assert rows(listed(stack.client, query=query)) == [ids[name] for name in expected]


def test_a_status_in_the_search_wins_over_the_menu(stack: Stack, ids: dict[str, int]) -> None:
    headers = {"Authorization": f"Bearer {stack.token}"}
    assert stack.client.patch(f"/api/v1/issues/{ids['a']}", json={"status": "resolved"}, headers=headers).is_success
    assert rows(listed(stack.client, query="level:error")) == []  # the menu's default: unresolved
    assert rows(listed(stack.client, query="is:resolved")) == [ids["a"]]
    assert rows(listed(stack.client, status="unresolved", query="is:resolved,unresolved")) == [
        ids["b"],
        ids["a"],
        ids["c"],
    ]
    assert rows(listed(stack.client, status="resolved", query="level:error")) == [ids["a"]]
    assert rows(listed(stack.client, status="all", query="is:assigned")) == [ids["a"]]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("is:bogus", "unknown is: value &#39;bogus&#39;"),
        ('release:"1.0', "unclosed quote (at position 9)"),
        ("level:loud", "unknown level &#39;loud&#39;"),
        ("assigned:nobody@example.com", "assigned: no user &#39;nobody@example.com&#39; (at position 1)"),
        ("environment:", "empty value for environment:"),
    ],
)
def test_a_bad_search_is_said_on_the_page_and_kept_in_the_box(
    stack: Stack, ids: dict[str, int], query: str, message: str
) -> None:
    page = listed(stack.client, query=query)
    assert page.status_code == 400
    error = re.search(r'<p id="search-error" class="error" role="alert">(.*?)</p>', page.text, re.S)
    assert error and message in error.group(1), page.text
    assert "No issues are shown" in error.group(1)
    assert f'name="query" value="{escape(query)}"' in page.text
    assert re.findall(r'<a class="title" href="/issues/(\d+)">', page.text) == []  # the list is empty, not all
    assert 'aria-invalid="true"' in page.text
    assert "Save this search" not in page.text  # nothing to save


def test_the_rows_of_a_bad_search_are_empty(stack: Stack, ids: dict[str, int]) -> None:
    page = stack.client.get(f"{LIST}/rows?{urlencode({'query': 'is:bogus'})}")
    assert page.status_code == 200 and "No issues match" in page.text


def test_the_old_query_parameter_still_searches_titles(stack: Stack, ids: dict[str, int]) -> None:
    assert rows(listed(stack.client, query="MISSING")) == [ids["b"]]
    assert rows(listed(stack.client, query="missing", level="warning", environment="staging")) == [ids["b"]]


def test_a_search_is_saved_listed_and_deleted(stack: Stack, ids: dict[str, int]) -> None:
    page = listed(stack.client, query='level:error,fatal release:"1.0"', status="all")
    assert "None yet" in page.text and "Save this search" in page.text
    filters = urlencode({"status": "all", "query": 'level:error,fatal release:"1.0"', "sort": "last_seen"})
    form = {"csrf_token": csrf_of(page), "filters": filters, "name": "Billing errors"}
    saved = stack.client.post(SAVED, data=form, follow_redirects=False)
    assert saved.status_code == 303
    assert saved.headers["location"] == f"{LIST}?{filters}"

    page = stack.client.get(LIST)
    [(href, name)] = saved_links(page)
    assert name == "Billing errors"
    assert _query_of(href) == 'level:error,fatal release:"1.0"'

    assert rows(stack.client.get(href)) == [ids["a"], ids["c"]]

    search_id = re.search(rf'action="{SAVED}/(\d+)/delete"', page.text)
    assert search_id, page.text
    deleted = stack.client.post(
        f"{SAVED}/{search_id.group(1)}/delete",
        data={"csrf_token": csrf_of(page), "filters": "status=resolved"},
        follow_redirects=False,
    )
    assert deleted.status_code == 303 and deleted.headers["location"].endswith("?status=resolved&sort=last_seen")
    assert saved_links(stack.client.get(LIST)) == []


def test_saving_refuses_what_cannot_be_saved(stack: Stack, ids: dict[str, int]) -> None:
    token = csrf_of(listed(stack.client, query="level:error"))

    def save(name: str, query: str) -> httpx.Response:
        form = {"csrf_token": token, "filters": urlencode({"query": query}), "name": name}
        return stack.client.post(SAVED, data=form, follow_redirects=False)

    assert save("Errors", "level:error").status_code == 303
    for name, query, status, message in [
        ("Errors", "level:fatal", 409, "you already have a saved search named &#39;Errors&#39; in this project"),
        ("", "level:fatal", 422, "a saved search needs a name of 1 to 200 characters"),
        ("x" * 201, "level:fatal", 422, "a saved search needs a name of 1 to 200 characters"),
        ("Broken", "is:bogus", 400, "the search is not valid: unknown is: value &#39;bogus&#39;"),
    ]:
        page = save(name, query)
        assert page.status_code == status, (name, page.text)
        assert f"The search was not saved: {message}" in page.text
        assert f'name="query" value="{escape(query)}"' in page.text  # the search is still there
    assert [name for _, name in saved_links(stack.client.get(LIST))] == ["Errors"]


def test_saved_search_forms_need_the_csrf_token(stack: Stack, ids: dict[str, int]) -> None:
    refused = stack.client.post(SAVED, data={"filters": "query=level:error", "name": "x"}, follow_redirects=False)
    assert refused.status_code == 403
    assert saved_links(stack.client.get(LIST)) == []


def test_saved_searches_are_the_users_own(stack: Stack, ids: dict[str, int]) -> None:
    page = listed(stack.client, query="level:error")
    form = {"csrf_token": csrf_of(page), "filters": "query=level%3Aerror", "name": "Mine"}
    assert stack.client.post(SAVED, data=form, follow_redirects=False).status_code == 303
    search_id = re.search(rf'action="{SAVED}/(\d+)/delete"', stack.client.get(LIST).text)
    assert search_id

    add_user(stack, "dev@example.com", admin=True)
    other = TestClient(stack.app)
    login(other, "dev@example.com")
    assert saved_links(other.get(LIST)) == []
    token = csrf_of(other.get(LIST))
    for target in (search_id.group(1), "0", str(2**64), "x"):
        response = other.post(f"{SAVED}/{target}/delete", data={"csrf_token": token}, follow_redirects=False)
        assert response.status_code == 404, target
        assert "You have no such saved search in this project." in response.text
    assert [name for _, name in saved_links(stack.client.get(LIST))] == ["Mine"]
    # Another user's "me" is themselves.
    assert rows(other.get(f"{LIST}?{urlencode({'query': 'assigned:me'})}")) == []


def test_saved_search_forms_of_a_hidden_project_are_404(stack: Stack, ids: dict[str, int]) -> None:
    add_user(stack, "outsider@example.com")
    outsider = TestClient(stack.app)
    login(outsider, "outsider@example.com")
    token = csrf_of(outsider.get("/"))
    form = {"csrf_token": token, "filters": "query=x", "name": "x"}
    assert outsider.post(SAVED, data=form, follow_redirects=False).status_code == 404
    assert outsider.post(f"{SAVED}/1/delete", data=form, follow_redirects=False).status_code == 404


def test_saved_search_names_and_queries_are_escaped(stack: Stack, ids: dict[str, int]) -> None:
    hostile = f'"><img src=x onerror=alert(2)>{SCRIPT}'
    query = f'release:"{hostile.replace(chr(34), chr(92) + chr(34))}" {SCRIPT}'
    page = listed(stack.client, query=query)
    assert page.status_code == 200, page.text
    form = {"csrf_token": csrf_of(page), "filters": urlencode({"query": query}), "name": hostile}
    assert stack.client.post(SAVED, data=form, follow_redirects=False).status_code == 303
    page = stack.client.get(LIST)
    assert SCRIPT not in page.text and "<img src=x" not in page.text and foreign_markup(page.text) == []
    [(href, name)] = saved_links(page)
    assert name == hostile and _query_of(href) == query
    # A search that does not parse is shown back escaped too.
    page = listed(stack.client, query=f'"{hostile}')
    assert page.status_code == 400 and SCRIPT not in page.text and foreign_markup(page.text) == []
