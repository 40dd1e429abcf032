"""The dashboard's issue page: counts, facets, the event in full, redaction markers, navigation, status, access."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
from markupsafe import escape
from starlette.testclient import TestClient

from stackwatch.server.storage import accounts
from tests.conftest import Stack
from tests.support import exception_event, foreign_markup, frame, issue_of, new_id, send_ok
from tests.test_web_auth import add_user, csrf_of, login

SCRIPT = "<script>alert(1)</script>"


def _chained(**fields: Any) -> dict[str, Any]:
    """A ``KeyError`` raised while handling a ``ValueError``: Sentry lists the cause first."""
    library = frame("get", "    return self._data[key]", module="lib.store", lineno=40, in_app=False)
    worker = {
        **frame("charge", "    total = prices[item]", lineno=12),
        "pre_context": ["def charge(item):", "    prices = load()"],
        "post_context": ["    return total"],
        "vars": {"item": "'apple'", "prices": {"pear": 3, "nested": [1, 2]}},
    }
    cause = {"type": "ValueError", "value": "bad price", "mechanism": {"type": "generic", "handled": True}}
    raised = {
        "type": "KeyError",
        "value": "'apple'",
        "mechanism": {"type": "excepthook", "handled": False},
        "stacktrace": {"frames": [worker, library]},
    }
    defaults: dict[str, Any] = dict(
        release="shop@1.2",
        environment="production",
        tags={"component": "billing"},
        user={"id": "u-17", "username": "ada"},
        breadcrumbs={
            "values": [{"timestamp": time.time() - 5, "category": "db", "level": "info", "message": "SELECT 1"}]
        },
    )
    event = exception_event(**{**defaults, **fields})
    event["exception"] = {"values": [cause, raised]}
    return event


@pytest.fixture
def admin(stack: Stack) -> TestClient:
    add_user(stack, "ops@example.com", admin=True)
    login(stack.client, "ops@example.com")
    return stack.client


def _page(client: TestClient, path: str) -> httpx.Response:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return page


def _sent(stack: Stack, event: dict[str, Any]) -> tuple[int, str]:
    event_id = send_ok(stack, event)
    stack.digest()
    return issue_of(stack, event_id), event_id


def test_the_page_shows_the_issue_and_its_latest_event(stack: Stack, admin: TestClient) -> None:
    send_ok(stack, _chained())
    issue_id, _ = _sent(stack, _chained())
    text = _page(admin, f"/issues/{issue_id}").text
    assert "KeyError" in text and "charge" in text  # title and culprit
    counts = dict(re.findall(r"<th>(\w+)</th><td class=\"number\">(\d+)</td>", text))
    assert counts == {"Events": "2", "Users": "1", "Runs": "0", "Workflows": "0", "Tenants": "0"}
    assert "shop@1.2" in text and time.strftime("%Y-%m-%d", time.gmtime()) in text
    assert re.search(r"<caption>component</caption>.*?billing</td><td class=\"number\">2</td>.*?100%", text, re.S)
    assert re.search(r"<caption>environment</caption>.*?production", text, re.S)
    assert len(re.findall(r"<meter min=\"0\" max=\"\d+\" value=\"\d+\">", text)) >= 24  # the hourly series
    # The chain, the raised exception first, each with its mechanism.
    raised, cause = text.index("KeyError: &#39;apple&#39;"), text.index("ValueError: bad price")
    assert raised < cause
    assert re.search(r"unhandled\s*\(excepthook\)", text) and re.search(r"handled\s*\(generic\)", text)
    # Frames in order, in-app emphasized, with source and vars.
    frames = re.findall(r'<li class="frame( in-app)?">\s*<div class="where">([^<]*)', text)
    assert [(bool(in_app), " ".join(where.split())) for in_app, where in frames] == [
        (True, "app/worker.py:12 in charge"),
        (False, "lib/store.py:40 in get"),
    ]
    assert '<span class="context-line">    total = prices[item]</span>' in text
    assert "    prices = load()" in text and "    return total" in text
    assert "<th>item</th><td><pre>&#39;apple&#39;</pre>" in text
    assert str(escape('"nested": [')) in text  # a nested var as JSON text
    assert re.search(r"<td>db</td><td>info</td>\s*<td>SELECT 1</td>", text)
    assert "<th>username</th><td><pre>ada</pre>" in text and "u-17" in text


def test_a_redacted_value_shows_a_marker_and_not_the_secret(stack: Stack, admin: TestClient) -> None:
    event = exception_event(
        "RuntimeError",
        "GET /callback?token=abcdef123456 failed",
        extra={"password": "hunter2"},
        tags={"api_key": "sk-zzz"},
        breadcrumbs=[{"category": "http", "message": "https://ada:s3cret@example.com/"}],
    )
    event["exception"]["values"][0]["stacktrace"]["frames"][0]["vars"] = {"secret": "swordfish"}
    issue_id, _ = _sent(stack, event)
    text = _page(admin, f"/issues/{issue_id}").text
    for secret in ("abcdef123456", "hunter2", "sk-zzz", "s3cret", "swordfish"):
        assert secret not in text
    assert re.search(r"failed <span class=\"redacted\" title=\"removed by rule secret_param\">", text)
    for rule in ("password", "api_key", "url_credentials", "secret"):
        assert f'title="removed by rule {rule}"' in text


def test_older_and_newer_lead_through_the_events(stack: Stack, admin: TestClient) -> None:
    ids = [send_ok(stack, _chained()) for _ in range(3)]
    stack.digest()
    issue_id = issue_of(stack, ids[0])

    def links(query: str) -> tuple[str | None, str | None, str]:
        text = _page(admin, f"/issues/{issue_id}{query}").text
        older = re.search(r'class="older" href="/issues/\d+\?event=(\w+)"', text)
        newer = re.search(r'class="newer" href="/issues/\d+\?event=(\w+)"', text)
        shown = re.search(r"<h2>Event (\w+)</h2>", text)
        assert shown
        return (older.group(1) if older else None, newer.group(1) if newer else None, shown.group(1))

    assert links("") == (ids[1], None, ids[2])  # the latest by default
    assert links(f"?event={ids[1]}") == (ids[0], ids[2], ids[1])
    assert links(f"?event={ids[0]}") == (None, ids[1], ids[0])
    assert admin.get(f"/issues/{issue_id}?event={new_id()}").status_code == 404


def test_the_status_buttons_change_the_status(stack: Stack, admin: TestClient) -> None:
    issue_id, _ = _sent(stack, _chained())
    page = _page(admin, f"/issues/{issue_id}")
    token = csrf_of(page)

    def status() -> str:
        return str(stack.api(f"/issues/{issue_id}").json()["status"])

    refused = admin.post(f"/issues/{issue_id}/status", data={"action": "resolve"}, follow_redirects=False)
    assert refused.status_code == 403 and status() == "unresolved"
    for action, expected in (("resolve", "resolved"), ("ignore", "ignored"), ("reopen", "unresolved")):
        answer = admin.post(
            f"/issues/{issue_id}/status", data={"action": action, "csrf_token": token}, follow_redirects=False
        )
        assert answer.status_code == 303 and answer.headers["location"] == f"/issues/{issue_id}"
        assert status() == expected
        assert f'<span class="status">{expected}</span>' in _page(admin, f"/issues/{issue_id}").text


def test_access(stack: Stack) -> None:
    issue_id, _ = _sent(stack, _chained())
    anonymous = stack.client.get(f"/issues/{issue_id}", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == f"/login?next=/issues/{issue_id}"
    add_user(stack, "dev@example.com")
    with stack.services.engine.begin() as connection:
        accounts.add_member(connection, "node", "dev@example.com")
    member = TestClient(stack.app)
    login(member, "dev@example.com")
    hidden, missing, junk = (member.get(f"/issues/{path}") for path in (issue_id, 999_999, "x1"))
    assert hidden.status_code == missing.status_code == junk.status_code == 404
    assert hidden.text == missing.text
    token = csrf_of(member.get("/"))
    form = {"action": "resolve", "csrf_token": token}
    assert member.post(f"/issues/{issue_id}/status", data=form, follow_redirects=False).status_code == 404
    assert stack.api(f"/issues/{issue_id}").json()["status"] == "unresolved"


def test_event_data_is_escaped_everywhere(stack: Stack, admin: TestClient) -> None:
    event = _chained(
        message=SCRIPT,
        tags={SCRIPT: SCRIPT},
        extra={SCRIPT: {SCRIPT: [SCRIPT]}},
        contexts={SCRIPT: {SCRIPT: SCRIPT}},
        request={"url": f"https://example.com/{SCRIPT}", "method": SCRIPT},
    )
    event["user"] = {"id": SCRIPT, "username": SCRIPT}
    event["breadcrumbs"] = [{"category": SCRIPT, "level": SCRIPT, "message": SCRIPT}]
    raised = event["exception"]["values"][1]
    raised.update(type=SCRIPT, value=SCRIPT, mechanism={"type": SCRIPT, "handled": False})
    worker = raised["stacktrace"]["frames"][0]
    worker.update(function=SCRIPT, filename=SCRIPT, context_line=SCRIPT, pre_context=[SCRIPT], vars={SCRIPT: SCRIPT})
    issue_id, _ = _sent(stack, event)
    text = _page(admin, f"/issues/{issue_id}").text
    assert foreign_markup(text) == []
    assert text.count(str(escape(SCRIPT))) >= 15


def test_the_page_says_how_many_events_retention_kept(stack: Stack, admin: TestClient) -> None:
    issue_id, _ = _sent(stack, exception_event(value="one"))
    assert "events stored" not in _page(admin, f"/issues/{issue_id}").text  # all of them are
    with stack.services.engine.begin() as connection:
        assert accounts.update_project(connection, "python", max_events=3)
    for i in range(5):
        send_ok(stack, exception_event(value=str(i)))
    stack.digest()
    retention = stack.services.digester.retention
    assert retention is not None
    retention.run_pass()
    assert "3 of 6 events stored" in _page(admin, f"/issues/{issue_id}").text
