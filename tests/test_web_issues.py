"""The dashboard's issue list: filters, sorts, pages, bulk status changes and access (both backends)."""

from __future__ import annotations

import html
import re
import time
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from stackwatch.server.storage import accounts
from tests.conftest import NODE_KEY, Stack
from tests.support import exception_event, foreign_markup, frame, issue_of, send_ok
from tests.test_web_auth import add_user, csrf_of, login

LIST = "/projects/python/issues"
SCRIPT = "<script>alert(1)</script>"


def _event(kind: str, value: str, function: str, at: float, **fields: Any) -> dict[str, Any]:
    frames = [frame(function, f"    raise {kind}()", lineno=5)]
    return exception_event(kind, value, frames, timestamp=at, **fields)


def _send_issues(stack: Stack) -> dict[str, int]:
    """Three issues in a different order for every sort; returns their ids by name.

    ====  ======  =====  ====  ==========  =========
    name  events  users  runs  first seen  last seen
    ====  ======  =====  ====  ==========  =========
    a     3       2      0     t-900       t-500
    b     2       0      2     t-800       t-100
    c     1       1      1     t-700       t-700
    ====  ======  =====  ====  ==========  =========
    """
    t = time.time()
    a = {"level": "error", "environment": "production", "release": "1.0"}
    a_tags = {"component": "billing", "workflow_id": "wf-1"}
    b = {"level": "warning", "environment": "staging", "release": "2.0"}
    b_tags = {"component": "search", "workflow_id": "wf-2"}
    c = {"level": "fatal", "environment": "production", "release": "1.0", "user": {"id": "u9"}}
    c_tags = {"component": "billing", "run_id": "r9"}

    def a_event(at: float, user: str) -> dict[str, Any]:
        return _event("ValueError", "bad a", "charge", at, tags=a_tags, user={"id": user}, **a)

    def b_event(at: float, run: str) -> dict[str, Any]:
        return _event("KeyError", "missing b", "lookup", at, tags={**b_tags, "run_id": run}, **b)

    sent = [
        ("a", a_event(t - 900, "u1")),
        ("b", b_event(t - 800, "r2")),
        ("c", _event("TypeError", SCRIPT, "render", t - 700, tags=c_tags, **c)),
        ("a", a_event(t - 600, "u1")),
        ("a", a_event(t - 500, "u2")),
        ("b", b_event(t - 100, "r3")),
    ]
    event_ids = [(name, send_ok(stack, event)) for name, event in sent]
    stack.digest()
    return {name: issue_of(stack, event_id) for name, event_id in event_ids}


def rows(page: httpx.Response) -> list[int]:
    assert page.status_code == 200, page.text
    return [int(found) for found in re.findall(r'<a class="title" href="/issues/(\d+)">', page.text)]


@pytest.fixture
def ids(stack: Stack) -> dict[str, int]:
    add_user(stack, "ops@example.com", admin=True)
    login(stack.client, "ops@example.com")
    return _send_issues(stack)


def test_the_list_shows_the_issues(stack: Stack, ids: dict[str, int]) -> None:
    page = stack.client.get(LIST)
    assert rows(page) == [ids["b"], ids["a"], ids["c"]]  # last seen first
    assert "ValueError" in page.text and "KeyError" in page.text
    row = re.search(rf'href="/issues/{ids["a"]}".*?</tr>', page.text, re.S)
    assert row, page.text
    assert re.findall(r'<td class="number">(\d+)</td>', row.group(0)) == ["3", "2", "0", "1"]
    assert "charge" in row.group(0)  # the culprit
    assert time.strftime("%Y-%m-%d", time.gmtime(time.time() - 500)) in row.group(0)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("level=warning", ["b"]),
        ("level=fatal", ["c"]),
        ("environment=staging", ["b"]),
        ("release=1.0", ["a", "c"]),
        ("component=billing", ["a", "c"]),
        ("workflow_id=wf-1", ["a"]),
        ("query=keyerror", ["b"]),
        ("query=MISSING", ["b"]),
        ("component=billing&level=error", ["a"]),
        ("environment=nowhere", []),
    ],
)
def test_each_filter_narrows(stack: Stack, ids: dict[str, int], query: str, expected: list[str]) -> None:
    assert rows(stack.client.get(f"{LIST}?{query}")) == [ids[name] for name in expected]


def test_status_filter(stack: Stack, ids: dict[str, int]) -> None:
    headers = {"Authorization": f"Bearer {stack.token}"}
    assert stack.client.patch(f"/api/v1/issues/{ids['a']}", json={"status": "resolved"}, headers=headers).is_success
    stack.client.patch(f"/api/v1/issues/{ids['c']}", json={"status": "ignored"}, headers=headers)
    assert rows(stack.client.get(LIST)) == [ids["b"]]  # unresolved by default
    assert rows(stack.client.get(f"{LIST}?status=resolved")) == [ids["a"]]
    assert rows(stack.client.get(f"{LIST}?status=ignored")) == [ids["c"]]
    assert rows(stack.client.get(f"{LIST}?status=all")) == [ids["b"], ids["a"], ids["c"]]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("last_seen", ["b", "a", "c"]),
        ("first_seen", ["c", "b", "a"]),
        ("events", ["a", "b", "c"]),
        ("users", ["a", "c", "b"]),
        ("runs", ["b", "c", "a"]),
    ],
)
def test_each_sort_orders(stack: Stack, ids: dict[str, int], sort: str, expected: list[str]) -> None:
    assert rows(stack.client.get(f"{LIST}?sort={sort}")) == [ids[name] for name in expected]


def test_the_form_keeps_its_values(stack: Stack, ids: dict[str, int]) -> None:
    page = stack.client.get(f"{LIST}?status=all&level=warning&component=search&query=key&sort=users").text
    assert '<option value="all" selected>' in page
    assert '<option value="warning" selected>' in page
    assert '<option value="users" selected>' in page
    assert 'name="component" value="search"' in page and 'name="query" value="key"' in page


def test_pages_follow_the_cursor_and_keep_the_filters(stack: Stack, ids: dict[str, int]) -> None:
    first = stack.client.get(f"{LIST}?sort=events&component=billing&status=all&limit=1")
    assert rows(first) == [ids["a"]]
    link = re.search(r'<a class="next" href="([^"]+)">Next page</a>', first.text)
    assert link, first.text
    target = html.unescape(link.group(1))
    assert "component=billing" in target and "sort=events" in target and "limit=1" in target
    second = stack.client.get(target)
    assert rows(second) == [ids["c"]]
    assert "Next page" not in second.text
    everything = stack.client.get(f"{LIST}?limit=2")
    assert len(rows(everything)) == 2 and "Next page" in everything.text
    assert len(rows(stack.client.get(f"{LIST}?limit=1000"))) == 3  # capped at 100, not refused
    assert stack.client.get(f"{LIST}?cursor=not-a-cursor").status_code == 400


def _status(stack: Stack, issue_id: int) -> dict[str, Any]:
    response = stack.api(f"/issues/{issue_id}")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_bulk_resolve_ignore_and_reopen(stack: Stack, ids: dict[str, int]) -> None:
    node_auth = f"Sentry sentry_key={NODE_KEY}, sentry_version=7, sentry_client=tests/1.0"
    other = send_ok(stack, exception_event("RangeError"), project_id=2, auth=node_auth)
    stack.digest()
    other_id = issue_of(stack, other)
    token = csrf_of(stack.client.get(LIST))
    form = {
        "csrf_token": token,
        "action": "resolve",
        "issue_id": [str(ids["a"]), str(ids["b"]), str(other_id), "junk"],
        "filters": "level=error&sort=events",
    }
    done = stack.client.post(f"{LIST}/bulk", data=form, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == f"{LIST}?status=unresolved&level=error&sort=events"
    for name in ("a", "b"):
        issue = _status(stack, ids[name])
        assert issue["status"] == "resolved" and issue["resolved_at"] is not None
    assert _status(stack, ids["c"])["status"] == "unresolved"
    assert _status(stack, other_id)["status"] == "unresolved"  # another project's issue: untouched
    assert rows(stack.client.get(LIST)) == [ids["c"]]
    stack.client.post(f"{LIST}/bulk", data={**form, "action": "ignore", "issue_id": [str(ids["c"])]})
    assert _status(stack, ids["c"])["status"] == "ignored"
    stack.client.post(f"{LIST}/bulk", data={**form, "action": "reopen", "issue_id": [str(ids["a"])]})
    reopened = _status(stack, ids["a"])
    assert reopened["status"] == "unresolved" and reopened["resolved_at"] is None
    unknown = stack.client.post(f"{LIST}/bulk", data={**form, "action": "delete"}, follow_redirects=False)
    assert unknown.status_code == 400


def test_bulk_without_csrf_is_refused(stack: Stack, ids: dict[str, int]) -> None:
    form = {"action": "resolve", "issue_id": [str(ids["a"])]}
    refused = stack.client.post(f"{LIST}/bulk", data=form, follow_redirects=False)
    assert refused.status_code == 403
    forged = stack.client.post(f"{LIST}/bulk", data={**form, "csrf_token": "x" * 43}, follow_redirects=False)
    assert forged.status_code == 403
    assert _status(stack, ids["a"])["status"] == "unresolved"


def test_a_member_of_another_project_gets_404(stack: Stack, ids: dict[str, int]) -> None:
    add_user(stack, "dev@example.com")
    with stack.services.engine.begin() as connection:
        accounts.add_member(connection, "node", "dev@example.com")
    member = TestClient(stack.app)
    login(member, "dev@example.com")
    hidden, missing = member.get(LIST), member.get("/projects/nowhere/issues")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.text == missing.text  # nothing says the project exists
    assert member.get("/projects/node/issues").status_code == 200
    token = csrf_of(member.get("/projects/node/issues"))
    form = {"csrf_token": token, "action": "resolve", "issue_id": [str(ids["a"])]}
    assert member.post(f"{LIST}/bulk", data=form, follow_redirects=False).status_code == 404
    assert _status(stack, ids["a"])["status"] == "unresolved"


def test_not_logged_in_goes_to_login(stack: Stack) -> None:
    response = stack.client.get(f"{LIST}?level=error", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=/projects/python/issues%3Flevel%3Derror")


def test_event_data_is_escaped(stack: Stack, ids: dict[str, int]) -> None:
    page = stack.client.get(LIST)
    assert SCRIPT not in page.text and foreign_markup(page.text) == []
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_the_projects_page_links_to_the_list(stack: Stack, ids: dict[str, int]) -> None:
    page = stack.client.get("/").text
    assert f'href="{LIST}"' in page and 'href="/projects/node/issues"' in page
