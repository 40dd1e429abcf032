"""The REST API's team workflow: assigning issues, comments, and the activity log that records what happened."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from stackwatch.server.api import queries
from stackwatch.server.app import create_app
from stackwatch.server.storage import accounts, activity
from stackwatch.server.storage.schema import issue_activity, issues
from tests.alert_support import RecordingHandler, smtp_server
from tests.conftest import Stack
from tests.support import exception_event, issue_of, send_ok


def _issue(stack: Stack, value: str = "boom", kind: str = "RuntimeError") -> int:
    event_id = send_ok(stack, exception_event(kind, value))
    stack.digest()
    return issue_of(stack, event_id)


def _token(stack: Stack, name: str, email: str | None = None, *, scope: str = "admin") -> str:
    with stack.services.engine.begin() as connection:
        user_id = accounts.find_user(connection, email) if email else None
        return accounts.create_token(connection, name, user_id, scope=scope)


def _call(stack: Stack, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token or stack.token}"}
    return stack.client.request(method, f"/api/v1{path}", headers=headers, **kwargs)


def _patch(stack: Stack, issue_id: int, body: Any, token: str | None = None) -> httpx.Response:
    return _call(stack, "PATCH", f"/issues/{issue_id}", token, json=body)


def _activity(stack: Stack, issue_id: int, **params: Any) -> list[dict[str, Any]]:
    page = stack.api(f"/issues/{issue_id}/activity", **params)
    assert page.status_code == 200, page.text
    return list(page.json()["data"])


def test_assign_reassign_and_unassign(team: Stack) -> None:
    issue_id = _issue(team)
    assert team.api(f"/issues/{issue_id}").json()["assignee"] is None
    assigned = _patch(team, issue_id, {"assignee": "Dev@Example.com "})
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["assignee"] == "dev@example.com"
    assert team.api(f"/issues/{issue_id}").json()["assignee"] == "dev@example.com"
    listed = team.api("/projects/python/issues").json()["data"]
    assert [issue["assignee"] for issue in listed] == ["dev@example.com"]
    assert _patch(team, issue_id, {"assignee": "admin@example.com"}).json()["assignee"] == "admin@example.com"
    assert _patch(team, issue_id, {"assignee": "admin@example.com"}).status_code == 200  # no change, no entry
    unassigned = _patch(team, issue_id, {"assignee": None})
    assert unassigned.status_code == 200 and unassigned.json()["assignee"] is None
    entries = [(e["kind"], e["data"]) for e in _activity(team, issue_id)]
    assert entries == [
        ("assigned", {"assignee": "dev@example.com", "previous": None}),
        ("assigned", {"assignee": "admin@example.com", "previous": "dev@example.com"}),
        ("assigned", {"assignee": None, "previous": "admin@example.com"}),
    ]


@pytest.mark.parametrize(
    ("assignee", "message"),
    [
        ("nobody@example.com", "nobody@example.com cannot be assigned"),  # no such user
        ("other@example.com", "other@example.com cannot be assigned"),  # a user who may not see the project
        ("", "an empty email cannot be assigned"),
    ],
)
def test_a_refused_assignee_is_a_clear_422(team: Stack, assignee: str, message: str) -> None:
    issue_id = _issue(team)
    refused = _patch(team, issue_id, {"assignee": assignee, "status": "resolved"})
    assert refused.status_code == 422 and message in refused.json()["detail"]
    assert "a member of the project" in refused.json()["detail"]
    after = team.api(f"/issues/{issue_id}").json()
    assert (after["assignee"], after["status"]) == (None, "unresolved")  # nothing of the request happened
    assert _activity(team, issue_id) == []


@pytest.mark.parametrize(
    "body",
    [{}, {"assignee": 7}, {"assignee": ["dev@example.com"]}, {"asignee": "dev@example.com"}, {"status": None}],
)
def test_bad_patch_bodies_are_refused(team: Stack, body: Any) -> None:
    issue_id = _issue(team)
    assert _patch(team, issue_id, body).status_code == 422
    assert _patch(team, 999_999, {"assignee": "dev@example.com"}).status_code == 404


def test_status_and_assignee_in_one_patch_and_who_did_it(team: Stack) -> None:
    issue_id = _issue(team)
    token = _token(team, "dev's laptop", "dev@example.com")
    changed = _patch(team, issue_id, {"status": "resolved", "assignee": "dev@example.com"}, token)
    assert (changed.json()["status"], changed.json()["assignee"]) == ("resolved", "dev@example.com")
    _patch(team, issue_id, {"status": "resolved"})  # already resolved: no entry
    _patch(team, issue_id, {"status": "ignored"})  # the fixture's token has no user: it acts by its name
    entries = _activity(team, issue_id)
    assert [(e["kind"], e["actor"], e["data"]) for e in entries] == [
        ("status", "dev@example.com", {"from": "unresolved", "to": "resolved"}),
        ("assigned", "dev@example.com", {"assignee": "dev@example.com", "previous": None}),
        ("status", "tests", {"from": "resolved", "to": "ignored"}),
    ]
    dev_id = entries[0]["user_id"]
    assert isinstance(dev_id, int) and entries[2]["user_id"] is None
    assert all(e["created_at"].endswith("Z") for e in entries)


def test_comments(team: Stack) -> None:
    issue_id = _issue(team)
    token = _token(team, "laptop", "dev@example.com")
    first = _call(team, "POST", f"/issues/{issue_id}/comments", token, json={"text": "Looking into it **now**"})
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["author"], body["text"], body["issue_id"]) == ("dev@example.com", "Looking into it **now**", issue_id)
    assert isinstance(body["user_id"], int) and body["created_at"].endswith("Z")
    by_token = _call(team, "POST", f"/issues/{issue_id}/comments", json={"text": "x" * 10_000})
    assert by_token.status_code == 201 and (by_token.json()["author"], by_token.json()["user_id"]) == ("tests", None)
    listed = team.api(f"/issues/{issue_id}/comments").json()
    assert [c["id"] for c in listed["data"]] == [body["id"], by_token.json()["id"]] and listed["next_cursor"] is None
    first_page = team.api(f"/issues/{issue_id}/comments", limit=1).json()
    assert [c["id"] for c in first_page["data"]] == [body["id"]]
    rest = team.api(f"/issues/{issue_id}/comments", limit=1, cursor=first_page["next_cursor"]).json()
    assert [c["id"] for c in rest["data"]] == [by_token.json()["id"]] and rest["next_cursor"] is None
    assert [(e["kind"], e["data"]) for e in _activity(team, issue_id)] == [
        ("comment", {"comment_id": body["id"]}),
        ("comment", {"comment_id": by_token.json()["id"]}),
    ]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"text": ""}, 422),
        ({"text": " \n\t "}, 422),
        ({"text": "x" * 10_001}, 422),
        ({"text": "a\x00b"}, 422),
        ({"text": 5}, 422),
        ({}, 422),
        ({"text": "ok", "author": "someone else"}, 422),
    ],
)
def test_bad_comments_are_refused(team: Stack, body: Any, status: int) -> None:
    issue_id = _issue(team)
    answer = _call(team, "POST", f"/issues/{issue_id}/comments", json=body)
    assert answer.status_code == status, answer.text
    assert team.api(f"/issues/{issue_id}/comments").json()["data"] == []
    assert _activity(team, issue_id) == []


def test_comment_paths_of_missing_issues_and_read_only_tokens(team: Stack) -> None:
    issue_id = _issue(team)
    assert _call(team, "POST", "/issues/999999/comments", json={"text": "hi"}).status_code == 404
    assert team.api("/issues/999999/comments").status_code == 404
    assert team.api("/issues/999999/activity").status_code == 404
    assert team.api(f"/issues/{issue_id}/activity", cursor="not-a-cursor").status_code == 400
    reader = _token(team, "reader", scope="read")
    assert _call(team, "POST", f"/issues/{issue_id}/comments", reader, json={"text": "hi"}).status_code == 403
    assert _patch(team, issue_id, {"assignee": "dev@example.com"}, reader).status_code == 403
    assert _call(team, "GET", f"/issues/{issue_id}/activity", reader).status_code == 200
    assert team.client.get(f"/api/v1/issues/{issue_id}/comments").status_code == 401


def test_a_regression_is_recorded_by_the_digest_in_its_batch(team: Stack) -> None:
    issue_id = _issue(team, "comes back")
    _patch(team, issue_id, {"status": "resolved"})
    event = exception_event("RuntimeError", "comes back", release="shop@2.0")
    send_ok(team, event)
    team.digest()
    entries = _activity(team, issue_id)
    assert [(e["kind"], e["actor"], e["user_id"]) for e in entries] == [
        ("status", "tests", None),
        ("regression", "Stackwatch", None),
    ]
    assert entries[1]["data"] == {
        "from": "resolved",
        "to": "unresolved",
        "event_id": event["event_id"],
        "release": "shop@2.0",
    }
    assert team.api(f"/issues/{issue_id}").json()["status"] == "unresolved"
    send_ok(team, exception_event("RuntimeError", "comes back"))  # unresolved already: no regression
    team.digest()
    assert len(_activity(team, issue_id)) == 2


def test_activity_interleaves_every_kind_in_order_and_pages(team: Stack) -> None:
    issue_id = _issue(team)
    _patch(team, issue_id, {"status": "resolved"})
    _call(team, "POST", f"/issues/{issue_id}/comments", json={"text": "fixed in 2.0"})
    _patch(team, issue_id, {"assignee": "dev@example.com"})
    send_ok(team, exception_event("RuntimeError", "boom"))
    team.digest()
    kinds = [e["kind"] for e in _activity(team, issue_id)]
    assert kinds == ["status", "comment", "assigned", "regression"]
    pages, cursor = [], None
    while True:
        page = team.api(f"/issues/{issue_id}/activity", limit=3, **({"cursor": cursor} if cursor else {})).json()
        pages.append([e["kind"] for e in page["data"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [["status", "comment", "assigned"], ["regression"]]
    assert team.api(f"/issues/{issue_id}/activity", limit=201).status_code == 422


def test_record_refuses_an_unknown_kind(team: Stack) -> None:
    issue_id = _issue(team)
    with pytest.raises(ValueError, match="unknown activity kind"), team.services.engine.begin() as connection:
        entry = activity.Activity(issue_id=issue_id, kind="teleported", actor=activity.STACKWATCH, data={}, at=1.0)
        activity.record_all(connection, [entry])
    with team.services.engine.connect() as connection:
        assert connection.execute(select(issue_activity)).all() == []


@pytest.fixture
def mailed(team: Stack) -> Iterator[tuple[Stack, RecordingHandler]]:
    with smtp_stack(team) as found:
        yield found


@contextmanager
def smtp_stack(team: Stack) -> Iterator[tuple[Stack, RecordingHandler]]:
    """The same server with SMTP configured, and the SMTP server's record of what it got."""
    handler = RecordingHandler()
    with smtp_server(handler) as controller:
        settings = dataclasses.replace(
            team.settings, smtp_host="127.0.0.1", smtp_port=controller.port, smtp_security="none", smtp_timeout=5
        )
        app = create_app(settings, team.services, run_worker=False)
        with TestClient(app) as client:
            yield dataclasses.replace(team, settings=settings, app=app, client=client), handler


def test_the_assignee_is_told_by_email_when_someone_else_assigns_them(mailed: tuple[Stack, RecordingHandler]) -> None:
    stack, handler = mailed
    issue_id = _issue(stack)
    dev = _token(stack, "laptop", "dev@example.com")
    assert _patch(stack, issue_id, {"assignee": "dev@example.com"}, dev).status_code == 200  # themselves: no mail
    assert handler.received == []
    assert _patch(stack, issue_id, {"assignee": "admin@example.com"}, dev).status_code == 200
    assert len(handler.received) == 1
    mail = handler.received[0]
    assert mail.rcpt_tos == ["admin@example.com"]
    text = mail.message.get_body(("plain",))
    assert text is not None
    content = text.get_content()
    assert "Assigned to you by dev@example.com" in content and "RuntimeError" in content
    assert f"/issues/{issue_id}" in content
    _patch(stack, issue_id, {"assignee": "admin@example.com"}, dev)  # no change: no second mail
    assert len(handler.received) == 1


def test_no_smtp_means_no_mail_and_no_warning(team: Stack, caplog: pytest.LogCaptureFixture) -> None:
    issue_id = _issue(team)
    dev = _token(team, "laptop", "dev@example.com")
    with caplog.at_level("DEBUG", logger="stackwatch"):
        assert _patch(team, issue_id, {"assignee": "admin@example.com"}, dev).status_code == 200
    assert [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")] == []


def test_a_bulk_status_change_records_the_issues_it_changed(team: Stack) -> None:
    first, second = _issue(team, "one"), _issue(team, "two", "KeyError")
    assert first != second
    _patch(team, first, {"status": "ignored"})
    by = activity.Actor(None, "bulk")
    with team.services.engine.begin() as connection:
        assert queries.set_status(connection, "ignored", issues.c.id.in_([first, second]), by=by) == 2
    assert [(e["kind"], e["actor"]) for e in _activity(team, first)] == [("status", "tests")]
    assert [(e["actor"], e["data"]) for e in _activity(team, second)] == [
        ("bulk", {"from": "unresolved", "to": "ignored"})
    ]
