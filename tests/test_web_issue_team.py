"""The issue page's team workflow over HTTP: the assignee control, comments, the Activity section, who may do what,
CSRF refusals, and comment Markdown that cannot put markup of its own on the page."""

from __future__ import annotations

import re

import httpx
import pytest
from starlette.testclient import TestClient

from stackwatch.server.storage import accounts
from tests.alert_support import RecordingHandler
from tests.conftest import Stack
from tests.support import exception_event, issue_of, send_ok
from tests.test_issue_team_api import smtp_stack
from tests.test_markdown import HOSTILE, assert_safe, tags
from tests.test_web_auth import add_user, csrf_of, login


def _client(stack: Stack, email: str) -> TestClient:
    client = TestClient(stack.app)
    login(client, email)
    return client


def _issue(stack: Stack) -> int:
    event_id = send_ok(stack, exception_event("RuntimeError", "boom"))
    stack.digest()
    return issue_of(stack, event_id)


def _page(client: TestClient, issue_id: int) -> str:
    page = client.get(f"/issues/{issue_id}")
    assert page.status_code == 200, page.text
    return page.text


def _post(client: TestClient, issue_id: int, what: str, **fields: str) -> httpx.Response:
    token = csrf_of(client.get(f"/issues/{issue_id}"))
    return client.post(f"/issues/{issue_id}/{what}", data={"csrf_token": token, **fields}, follow_redirects=False)


def _activity(stack: Stack, issue_id: int) -> list[tuple[str, str, dict[str, object]]]:
    entries = stack.api(f"/issues/{issue_id}/activity").json()["data"]
    return [(entry["kind"], entry["actor"], entry["data"]) for entry in entries]


def _assignee(stack: Stack, issue_id: int) -> str | None:
    found: str | None = stack.api(f"/issues/{issue_id}").json()["assignee"]
    return found


def _selected(text: str) -> str:
    found = re.search(r'<select name="assignee">.*?<option value="([^"]*)" selected>', text, re.S)
    assert found, text
    return found.group(1)


def test_the_assignee_control(team: Stack) -> None:
    issue_id = _issue(team)
    admin = _client(team, "admin@example.com")
    text = _page(admin, issue_id)
    options = re.findall(r'<option value="([^"]*)"', text.split('<select name="assignee">')[1].split("</select>")[0])
    assert options == ["", "admin@example.com", "dev@example.com"]  # nobody, then those who may see the project
    assert _selected(text) == "" and "Assign to me" in text
    answer = _post(admin, issue_id, "assign", assignee="dev@example.com", action="assign")
    assert answer.status_code == 303 and answer.headers["location"] == f"/issues/{issue_id}#assignee"
    assert _assignee(team, issue_id) == "dev@example.com"
    assert _selected(_page(admin, issue_id)) == "dev@example.com"
    assert _post(admin, issue_id, "assign", assignee="dev@example.com", action="me").status_code == 303
    assert _assignee(team, issue_id) == "admin@example.com"
    assert "Assign to me" not in _page(admin, issue_id)  # assigned to me already
    assert _post(admin, issue_id, "assign", assignee="", action="assign").status_code == 303
    assert _assignee(team, issue_id) is None
    assert _activity(team, issue_id) == [
        ("assigned", "admin@example.com", {"assignee": "dev@example.com", "previous": None}),
        ("assigned", "admin@example.com", {"assignee": "admin@example.com", "previous": "dev@example.com"}),
        ("assigned", "admin@example.com", {"assignee": None, "previous": "admin@example.com"}),
    ]


def test_a_refused_assignee_changes_nothing(team: Stack) -> None:
    issue_id = _issue(team)
    admin = _client(team, "admin@example.com")
    for email in ("other@example.com", "nobody@example.com", "x\x00@example.com"):
        refused = _post(admin, issue_id, "assign", assignee=email, action="assign")
        assert refused.status_code == 422 and "cannot be assigned" in refused.text
    assert _assignee(team, issue_id) is None and _activity(team, issue_id) == []


def test_members_may_assign_and_comment_on_their_projects_issues_only(team: Stack) -> None:
    issue_id = _issue(team)
    dev = _client(team, "dev@example.com")
    assert _post(dev, issue_id, "assign", action="me").status_code == 303
    assert _post(dev, issue_id, "comments", text="mine now").status_code == 303
    assert _assignee(team, issue_id) == "dev@example.com"
    other = _client(team, "other@example.com")
    token = csrf_of(other.get("/"))
    for what, fields in (("assign", {"action": "me"}), ("comments", {"text": "hi"})):
        answer = other.post(f"/issues/{issue_id}/{what}", data={"csrf_token": token, **fields}, follow_redirects=False)
        assert answer.status_code == 404
    assert [kind for kind, _, _ in _activity(team, issue_id)] == ["assigned", "comment"]
    assert _assignee(team, issue_id) == "dev@example.com"


def test_forms_without_the_csrf_token_are_refused(team: Stack) -> None:
    issue_id = _issue(team)
    admin = _client(team, "admin@example.com")
    _page(admin, issue_id)
    for token in (None, "wrong"):
        data = {"assignee": "admin@example.com", "text": "hello", **({"csrf_token": token} if token else {})}
        for what in ("assign", "comments"):
            refused = admin.post(f"/issues/{issue_id}/{what}", data=data, follow_redirects=False)
            assert refused.status_code == 403, what
    assert _assignee(team, issue_id) is None and _activity(team, issue_id) == []


def test_a_logged_out_form_leads_to_the_login_page(team: Stack) -> None:
    issue_id = _issue(team)
    admin = _client(team, "admin@example.com")
    token = csrf_of(admin.get(f"/issues/{issue_id}"))
    with team.services.engine.begin() as connection:
        accounts.end_sessions(connection, accounts.find_user(connection, "admin@example.com"))
    answer = admin.post(
        f"/issues/{issue_id}/comments", data={"csrf_token": token, "text": "hi"}, follow_redirects=False
    )
    assert answer.status_code == 303 and answer.headers["location"] == f"/login?next=/issues/{issue_id}"
    assert _activity(team, issue_id) == []


def test_comments_and_events_interleave_in_the_activity_section(team: Stack) -> None:
    issue_id = _issue(team)
    admin = _client(team, "admin@example.com")
    assert 'id="activity"' in _page(admin, issue_id) and "Nothing has happened to this issue yet" in _page(
        admin, issue_id
    )
    token = csrf_of(admin.get(f"/issues/{issue_id}"))
    admin.post(f"/issues/{issue_id}/status", data={"csrf_token": token, "action": "resolve"})
    answer = _post(admin, issue_id, "comments", text="Fixed by **retrying**\r\nsee [PR](https://example.com/pr/1)")
    assert answer.status_code == 303 and answer.headers["location"] == f"/issues/{issue_id}#activity"
    send_ok(team, exception_event("RuntimeError", "boom", release="shop@2"))
    team.digest()
    admin.post(
        "/projects/python/issues/bulk",
        data={"csrf_token": token, "action": "ignore", "issue_id": str(issue_id), "filters": ""},
    )
    text = _page(admin, issue_id)
    section = text.split('<section class="activity" id="activity">')[1].split("</section>")[0]
    lines = [" ".join(re.sub(r"<[^>]+>", "", item).split()) for item in re.findall(r"<li .*?</li>", section, re.S)]
    assert [line.split(" · ")[0] for line in lines] == [
        "admin@example.com resolved the issue",
        "admin@example.com commented",
        "Stackwatch reopened the issue: a new event in release shop@2 after it was resolved (regression)",
        "admin@example.com ignored the issue",
    ]
    assert "Fixed by <strong>retrying</strong><br />" in section
    assert '<a href="https://example.com/pr/1" rel="nofollow noopener noreferrer">PR</a>' in section
    assert [kind for kind, _, _ in _activity(team, issue_id)] == ["status", "comment", "regression", "status"]
    comments = team.api(f"/issues/{issue_id}/comments").json()["data"]
    assert comments[0]["text"] == "Fixed by **retrying**\nsee [PR](https://example.com/pr/1)"


@pytest.mark.parametrize(
    ("text", "message"), [("", "needs some text"), (" \n ", "needs some text"), ("x" * 10_001, "at most")]
)
def test_a_refused_comment_says_why(team: Stack, text: str, message: str) -> None:
    issue_id = _issue(team)
    admin = _client(team, "admin@example.com")
    refused = _post(admin, issue_id, "comments", text=text)
    assert refused.status_code == 422 and message in refused.text
    assert _activity(team, issue_id) == []


def test_hostile_comments_put_no_markup_of_their_own_on_the_page(team: Stack) -> None:
    issue_id = _issue(team)
    dev = _client(team, "dev@example.com")
    for text in HOSTILE:
        assert _post(dev, issue_id, "comments", text=text).status_code == 303, text
    for email in ('"><script>alert(1)</script>@example.com',):
        add_user(team, email, admin=True)  # an address people choose shows as actor and as an option
        _post(_client(team, email), issue_id, "comments", text="hello")
    text = _page(dev, issue_id)
    # Parsed as a browser would (``foreign_markup`` reads the raw text, where an escaped ``style=`` is only text).
    found = tags(text)
    assert [(tag, name) for tag, attrs in found for name in attrs if name.startswith("on") or name == "style"] == []
    assert [
        attrs for tag, attrs in found if tag == "script" and not (attrs.get("src") or "").startswith("/static/")
    ] == []
    assert [tag for tag, _ in found if tag in ("img", "svg", "iframe", "style")] == []
    section = text.split('<section class="activity" id="activity">')[1].split("</section>")[0]
    bodies = re.findall(r'<div class="comment-body">(.*?)</div>\n  </li>', section, re.S)
    assert len(bodies) == len(HOSTILE) + 1
    for body in bodies:
        assert_safe(body)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;@example.com" in text
    assert "javascript:" not in " ".join(re.findall(r'href="([^"]*)"', text)).lower()


def test_the_page_tells_the_assignee_by_email(team: Stack) -> None:
    with smtp_stack(team) as (stack, handler):
        _tell(stack, handler)


def _tell(stack: Stack, handler: RecordingHandler) -> None:
    issue_id = _issue(stack)
    dev = _client(stack, "dev@example.com")
    assert _post(dev, issue_id, "assign", action="me").status_code == 303  # themselves: no e-mail
    assert handler.received == []
    assert _post(dev, issue_id, "assign", assignee="admin@example.com", action="assign").status_code == 303
    assert [mail.rcpt_tos for mail in handler.received] == [["admin@example.com"]]
    assert "Assigned to you by dev@example.com" in str(handler.received[0].message.get_body(("plain",)))
