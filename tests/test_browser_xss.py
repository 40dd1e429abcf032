"""Script payloads in every field of an event, and in every name a user can give, shown on every page of the
dashboard in a real browser: no script runs, no dialog opens, no event handler or foreign script element exists
in the page, and the payloads are on the page as text.

The Content-Security-Policy would stop an inline script even if escaping failed, so the test does not rely on it:
it looks for the elements and attributes escaping must prevent, whatever the browser would then have done.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from stackwatch.server import saved_searches
from stackwatch.server.alerts import manage
from stackwatch.server.services import Services
from stackwatch.server.storage import accounts
from tests.browser import PASSWORD, Tab, new_tab
from tests.conftest import ServerFactory, ServerProcess
from tests.support import AUTH

pytestmark = pytest.mark.slow

# Every way out of text into markup: a script element, an event handler, an element opening in an attribute,
# a template expression, a javascript: URL.
PAYLOAD = '"\'><script>window.__xss=1</script><img src=x onerror="window.__xss=2"><svg onload=alert(3)>{{7*7}}'
URL = "javascript:alert(4)//" + PAYLOAD
SAVED_VALUE = '"' + PAYLOAD.replace("\\", "\\\\").replace('"', '\\"') + '"'  # the payload, quoted for a search

# What escaping must make impossible: elements with on* attributes, scripts other than the dashboard's own,
# javascript: links, and the payload's own elements.
PROBE = """() => {
  const own = new Set(["htmx.min.js", "sse.min.js", "uPlot.iife.min.js", "stackwatch.js"]);
  const handlers = [...document.querySelectorAll("*")].flatMap(
    (el) => [...el.attributes].filter((a) => a.name.startsWith("on")).map((a) => el.tagName + " " + a.name));
  const scripts = [...document.scripts].filter((s) => !own.has((s.getAttribute("src") || "").split("/").pop()))
    .map((s) => s.outerHTML);
  const links = [...document.querySelectorAll("[href],[src],[action]")].filter((el) =>
    /^\\s*javascript:/i.test(el.getAttribute("href") || el.getAttribute("src") || el.getAttribute("action")))
    .map((el) => el.outerHTML);
  const foreign = [...document.querySelectorAll("img[src=x], main svg:not(.sparkline), .comment-body img")]
    .map((el) => el.outerHTML);
  return { handlers, scripts, links, foreign, xss: window.__xss === undefined ? null : window.__xss };
}"""


def _event(run_id: str) -> dict[str, Any]:
    frame = {
        "filename": f"app/{PAYLOAD}.py",
        "abs_path": URL,
        "module": f"app.{PAYLOAD}",
        "function": PAYLOAD,
        "lineno": 7,
        "context_line": PAYLOAD,
        "pre_context": [PAYLOAD],
        "post_context": [PAYLOAD],
        "vars": {PAYLOAD: PAYLOAD, "nested": {PAYLOAD: [PAYLOAD]}},
        "in_app": True,
    }
    workflow = {"component": PAYLOAD, "workflow_id": PAYLOAD, "run_id": run_id, "step_id": PAYLOAD, "tenant": PAYLOAD}
    return {
        "event_id": uuid.uuid4().hex,
        "timestamp": time.time(),
        "platform": "python",
        "level": "error",
        "logger": PAYLOAD,
        "transaction": PAYLOAD,
        "server_name": PAYLOAD,
        "release": PAYLOAD[:200],
        "environment": "production",
        "message": PAYLOAD,
        "exception": {
            "values": [
                {
                    "type": PAYLOAD,
                    "value": PAYLOAD,
                    "module": PAYLOAD,
                    "mechanism": {"type": PAYLOAD, "handled": False, "data": {PAYLOAD: PAYLOAD}},
                    "stacktrace": {"frames": [frame]},
                }
            ]
        },
        "tags": {**workflow, PAYLOAD[:30]: PAYLOAD},
        "user": {"id": PAYLOAD, "username": PAYLOAD, "data": {PAYLOAD: PAYLOAD}},
        "breadcrumbs": {
            "values": [
                {
                    "timestamp": time.time(),
                    "category": PAYLOAD,
                    "level": "info",
                    "message": PAYLOAD,
                    "data": {"url": URL, PAYLOAD: PAYLOAD},
                }
            ]
        },
        "contexts": {PAYLOAD: {PAYLOAD: PAYLOAD, "type": PAYLOAD}, "workflow": workflow},
        "request": {"url": URL, "method": PAYLOAD, "query_string": PAYLOAD, "data": {PAYLOAD: PAYLOAD}},
        "extra": {PAYLOAD: PAYLOAD, "link": URL},
        "fingerprint": [PAYLOAD],
    }


@pytest.fixture
def hostile(start_server: ServerFactory, services: Services) -> Iterator[tuple[ServerProcess, str]]:
    """A server whose project, key, channel, rule, member, token and saved search names and queries — and events —
    carry the payload."""
    with services.engine.begin() as connection:
        accounts.create_user(connection, "ops@example.com", PASSWORD, admin=True)
        project = accounts.create_project(connection, PAYLOAD)
        accounts.create_key(connection, 1, PAYLOAD)
        channel = manage.create_channel(
            connection, 1, name=PAYLOAD, kind="webhook", config={"url": "http://127.0.0.1:9/" + quote(PAYLOAD)}
        )
        manage.create_rule(
            connection,
            1,
            {"name": PAYLOAD, "trigger": "new_issue", "channels": [channel], "filters": {"environment": PAYLOAD}},
        )
        user_id = accounts.create_user(connection, "member@example.com", PASSWORD)
        accounts.add_member(connection, "python", "member@example.com")
        accounts.create_token(connection, PAYLOAD, user_id=user_id)
        accounts.create_token(connection, PAYLOAD, user_id=1)
        for owner in (1, user_id):  # the payload as a saved search's name and query, as text and as a value
            saved_searches.create(connection, owner, 1, PAYLOAD, PAYLOAD)
            saved_searches.create(connection, owner, 1, PAYLOAD[::-1], f"release:{SAVED_VALUE} {PAYLOAD}")
        commenter = accounts.create_token(connection, PAYLOAD)  # no user: comments by the token's name
    server = start_server()
    run_id = "run-" + uuid.uuid4().hex[:8]
    for _ in range(2):
        response = httpx.post(
            f"{server.base_url}/api/1/store/",
            json=_event(run_id),
            headers={"X-Sentry-Auth": AUTH, "Content-Type": "application/json"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
    server.wait_digested()
    assert project.slug
    _comment_and_assign(server, commenter)
    yield server, run_id


# Comment Markdown is attacker-controlled too: the payload as text, as link text and targets, as an image, in code.
COMMENTS = [
    PAYLOAD,
    f"[{PAYLOAD}]({URL}) [x](javascript:alert(5)) [y](data:text/html,<script>alert(6)</script>)",
    f"![{PAYLOAD}](javascript:alert(7)) ![img](https://example.com/x.png) <{URL}>",
    f"**{PAYLOAD}** `{PAYLOAD}`\n\n```{PAYLOAD}\n{PAYLOAD}\n```\n\n> [z](&#106;avascript:alert(8))",
]


def _comment_and_assign(server: ServerProcess, token: str) -> None:
    """Comments carrying the payload, by a token named with it, and the issue assigned: the Activity section."""
    headers = {"Authorization": f"Bearer {token}"}
    issue_id = httpx.get(f"{server.base_url}/api/v1/projects/python/issues", headers=headers, timeout=10).json()[
        "data"
    ][0]["id"]
    for text in COMMENTS:
        answer = httpx.post(
            f"{server.base_url}/api/v1/issues/{issue_id}/comments", json={"text": text}, headers=headers, timeout=10
        )
        assert answer.status_code == 201, answer.text
    for change in ({"status": "resolved"}, {"status": "unresolved", "assignee": "member@example.com"}):
        answer = httpx.patch(f"{server.base_url}/api/v1/issues/{issue_id}", json=change, headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text


@pytest.fixture
def tab(chromium: Any, hostile: tuple[ServerProcess, str], screenshots: Path) -> Iterator[Tab]:
    yield from new_tab(chromium, hostile[0], screenshots)


def _check(tab: Tab, path: str, *, shows_payload: bool = True, status: int = 200) -> None:
    response = tab.open(path)
    assert response.status == status, path
    tab.page.wait_for_timeout(300)  # charts drawn, htmx settled, live stream opened
    found = tab.page.evaluate(PROBE)
    assert found == {"handlers": [], "scripts": [], "links": [], "foreign": [], "xss": None}, (path, found)
    if shows_payload:
        assert "<script>window.__xss=1</script>" in tab.page.locator("main").inner_text(), path
    assert "{{7*7}}" in tab.page.content() or not shows_payload  # shown as written, not evaluated


def test_no_script_runs_on_any_page(tab: Tab, hostile: tuple[ServerProcess, str]) -> None:
    server, run_id = hostile
    tab.login("ops@example.com")
    issues = httpx.get(
        f"{server.base_url}/api/v1/projects/python/issues",
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=10,
    ).json()["data"]
    assert len(issues) == 1
    issue_id = issues[0]["id"]
    event_id = httpx.get(
        f"{server.base_url}/api/v1/issues/{issue_id}/events",
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=10,
    ).json()["data"][0]["event_id"]
    query = quote(PAYLOAD, safe="")
    rule_id = next(
        rule["id"]
        for rule in httpx.get(
            f"{server.base_url}/api/v1/projects/python/alert-rules",
            headers={"Authorization": f"Bearer {server.token}"},
            timeout=10,
        ).json()
        if rule["name"] == PAYLOAD
    )
    slug = next(
        project["slug"]
        for project in httpx.get(
            f"{server.base_url}/api/v1/projects", headers={"Authorization": f"Bearer {server.token}"}, timeout=10
        ).json()
        if project["name"] == PAYLOAD
    )
    pages = [
        ("/", True),
        ("/projects/python/issues", True),
        (f"/projects/python/issues?status=all&component={query}&workflow_id={query}&query={query}", False),
        (f"/projects/python/issues?release={query}&environment={query}&sort={query}&limit={query}", False),
        (f"/projects/python/issues/rows?query={query}", False),
        (f"/issues/{issue_id}", True),
        (f"/issues/{issue_id}?range=30d&event={event_id}", True),
        (f"/issues/{issue_id}/summary?range={query}&event={query}", False),
        (f"/issues/{issue_id}/impact", True),
        (f"/runs/{quote(run_id)}", True),
        ("/projects/python/trends", True),
        (f"/projects/python/trends?range={query}", True),
        ("/projects/python/settings", True),
        (f"/projects/python/settings/rules/{rule_id}", True),
        (f"/projects/{quote(slug, safe='')}/issues", True),
        ("/account/tokens", True),
    ]
    for path, shows in pages:
        _check(tab, path, shows_payload=shows)
    _check(tab, f"/issues/{issue_id}?event={query}", shows_payload=False, status=404)
    _check(tab, f"/projects/{query}/issues", shows_payload=False, status=404)
    # Searches that are refused, shown back in the box and in the message.
    for refused in (f"release:{SAVED_VALUE} is:bogus", "level:" + PAYLOAD, PAYLOAD + ' "'):
        _check(tab, f"/projects/python/issues?query={quote(refused, safe='')}", shows_payload=False, status=400)
    saved = tab.page.locator(".saved-searches").inner_text()
    assert saved.count("<script>window.__xss=1</script>") == 4, saved  # two names, two queries, as text
    tab.console_errors = [error for error in tab.console_errors if "404" not in error and "400" not in error]
    tab.assert_clean()

    # The member's view of the same data, and the login page with a payload in ``next``.
    for member in new_tab(tab.page.context.browser, server, tab.screenshots):
        member.login("member@example.com")
        _check(member, "/", shows_payload=False)  # the member sees Python only
        for path in ("/projects/python/issues", f"/issues/{issue_id}", "/projects/python/settings"):
            _check(member, path)
        member.assert_clean()
    for anonymous in new_tab(tab.page.context.browser, server, tab.screenshots):
        _check(anonymous, f"/login?next={query}", shows_payload=False)
        anonymous.assert_clean()
