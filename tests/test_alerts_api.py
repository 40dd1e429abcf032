"""Alert rules and channels through the REST API: CRUD, validation, secrets never shown, the test action against a
real local receiver, channel health, and the outbox listing."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest

from stackwatch.server.alerts import channels as channel_modules
from stackwatch.server.alerts.channels.webhook import sign
from stackwatch.server.alerts.dispatcher import Dispatcher
from tests import support
from tests.alert_support import Answer, RecordingServer
from tests.conftest import Stack

WEBHOOK_SECRET = "hook-secret-5f1c2e9a7b"
SLACK_PATH = "/services/T0STACK/B0WATCH/slackpathsecret42"


def call(stack: Stack, method: str, path: str, body: Any = None, **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {stack.token}"}
    return stack.client.request(method, f"/api/v1{path}", json=body, params=params, headers=headers)


def create_channel(stack: Stack, slug: str = "python", **body: Any) -> dict[str, Any]:
    response = call(stack, "POST", f"/projects/{slug}/alert-channels", body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def create_rule(stack: Stack, slug: str = "python", **body: Any) -> dict[str, Any]:
    response = call(stack, "POST", f"/projects/{slug}/alert-rules", body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def channels(stack: Stack, slug: str = "python") -> dict[int, dict[str, Any]]:
    response = stack.api(f"/projects/{slug}/alert-channels")
    assert response.status_code == 200, response.text
    return {c["id"]: c for c in response.json()}


def admins_channel(stack: Stack, slug: str = "python") -> int:
    return next(c["id"] for c in channels(stack, slug).values() if c["name"] == "Administrators")


def webhook(stack: Stack, url: str, slug: str = "python") -> dict[str, Any]:
    config = {"url": url, "secret": WEBHOOK_SECRET}
    return create_channel(stack, slug, name="hook", kind="webhook", config=config)


def test_a_new_project_lists_its_default_channel_and_rules(stack: Stack) -> None:
    (channel,) = channels(stack).values()
    assert channel["name"] == "Administrators" and channel["kind"] == "email"
    assert channel["config"]["admins"] is True
    assert channel["healthy"] is True and channel["consecutive_failures"] == 0 and channel["last_error"] is None
    rules = stack.api("/projects/python/alert-rules").json()
    assert [r["name"] for r in rules] == ["New issue", "Regression", "Fatal in production"]
    assert all(r["channels"] == [channel["id"]] and r["enabled"] for r in rules)
    assert rules[2]["level"] == "fatal" and rules[2]["filters"] == {"environment": "production"}


def test_channel_create_list_delete(stack: Stack) -> None:
    created = create_channel(stack, name="On call", kind="email", config={"to": ["oncall@example.com"]}, hourly_cap=5)
    assert created["name"] == "On call" and created["kind"] == "email" and created["hourly_cap"] == 5
    assert created["config"]["to"] == ["oncall@example.com"]
    assert created["healthy"] is True and created["last_success_at"] is None
    assert channels(stack)[created["id"]] == created
    assert created["id"] not in channels(stack, "node")

    assert call(stack, "DELETE", f"/projects/node/alert-channels/{created['id']}").status_code == 404
    assert call(stack, "DELETE", f"/projects/python/alert-channels/{created['id']}").status_code == 204
    assert created["id"] not in channels(stack)
    assert call(stack, "DELETE", f"/projects/python/alert-channels/{created['id']}").status_code == 404


def test_rule_create_update_delete(stack: Stack) -> None:
    email = create_channel(stack, name="Team", kind="email", config={"to": ["team@example.com"]})
    rule = create_rule(
        stack,
        name="Busy",
        trigger="event_frequency",
        threshold=50,
        window_minutes=5,
        filters={"environment": "production", "tags": {"tenant": "acme"}},
        channels=[email["id"]],
    )
    assert rule["trigger"] == "event_frequency" and (rule["threshold"], rule["window_minutes"]) == (50, 5)
    assert rule["filters"] == {"environment": "production", "tags": {"tenant": "acme"}}
    assert rule["cooldown_minutes"] == 30 and rule["enabled"] is True and rule["channels"] == [email["id"]]
    assert rule in stack.api("/projects/python/alert-rules").json()
    assert rule not in stack.api("/projects/node/alert-rules").json()

    path = f"/projects/python/alert-rules/{rule['id']}"
    changed = call(stack, "PATCH", path, {"cooldown_minutes": 5, "enabled": False})
    assert changed.status_code == 200, changed.text
    assert changed.json() == {**rule, "cooldown_minutes": 5, "enabled": False}  # the rest is kept
    both = [admins_channel(stack), email["id"]]
    assert call(stack, "PATCH", path, {"channels": both}).json()["channels"] == sorted(both)
    impact = call(stack, "PATCH", path, {"trigger": "impact", "impact_kind": "users"}).json()
    assert impact["impact_kind"] == "users" and impact["threshold"] == 50

    assert call(stack, "PATCH", f"/projects/node/alert-rules/{rule['id']}", {"enabled": True}).status_code == 404
    assert call(stack, "DELETE", f"/projects/node/alert-rules/{rule['id']}").status_code == 404
    assert call(stack, "DELETE", path).status_code == 204
    assert call(stack, "DELETE", path).status_code == 404
    assert call(stack, "PATCH", path, {"enabled": True}).status_code == 404


def test_deleting_a_channel_detaches_it_from_rules(stack: Stack) -> None:
    email = create_channel(stack, name="Team", kind="email", config={"to": ["team@example.com"]})
    rule = create_rule(stack, name="New", trigger="new_issue", channels=[admins_channel(stack), email["id"]])
    assert call(stack, "DELETE", f"/projects/python/alert-channels/{email['id']}").status_code == 204
    (after,) = [r for r in stack.api("/projects/python/alert-rules").json() if r["id"] == rule["id"]]
    assert after["channels"] == [admins_channel(stack)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"trigger": "sometimes"}, "trigger must be one of"),
        ({"trigger": "event_frequency", "window_minutes": 5}, "needs threshold"),
        ({"trigger": "event_frequency", "threshold": 5}, "needs window_minutes"),
        ({"trigger": "event_frequency", "threshold": 10**12, "window_minutes": 5}, "needs threshold"),
        ({"trigger": "impact", "threshold": 5, "window_minutes": 5, "impact_kind": "cats"}, "impact_kind must be"),
        ({"trigger": "new_issue", "filters": {"host": "web-1"}}, "filters may only hold"),
        ({"trigger": "new_issue", "filters": {"level": "loud"}}, "filters.level must be one of"),
        ({"trigger": "new_issue", "filters": {"tags": ["a"]}}, "filters.tags must map"),
        ({"trigger": "level", "level": "loud"}, "level must be one of"),
        ({"trigger": "new_issue", "cooldown_minutes": -1}, "cooldown_minutes"),
        ({"trigger": "new_issue", "name": "  "}, "a rule needs a name"),
        ({"trigger": "new_issue", "channels": []}, "a rule needs channels"),
        ({"trigger": "new_issue", "channels": [999_999]}, "no channel 999999 in this project"),
    ],
)
def test_invalid_rules_are_refused_with_a_message(stack: Stack, body: dict[str, Any], message: str) -> None:
    body = {"name": "rule", "channels": [admins_channel(stack)], **body}
    response = call(stack, "POST", "/projects/python/alert-rules", body)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert len(stack.api("/projects/python/alert-rules").json()) == 3  # nothing half-stored


def test_a_rule_cannot_use_a_channel_of_another_project(stack: Stack) -> None:
    theirs = admins_channel(stack, "node")
    body = {"name": "steal", "trigger": "new_issue", "channels": [theirs]}
    response = call(stack, "POST", "/projects/python/alert-rules", body)
    assert response.status_code == 422 and f"no channel {theirs} in this project" in response.json()["detail"]
    rule_id = stack.api("/projects/python/alert-rules").json()[0]["id"]
    response = call(stack, "PATCH", f"/projects/python/alert-rules/{rule_id}", {"channels": [theirs]})
    assert response.status_code == 422
    assert stack.api("/projects/python/alert-rules").json()[0]["channels"] == [admins_channel(stack)]


def test_invalid_updates_are_refused_and_change_nothing(stack: Stack) -> None:
    rule = stack.api("/projects/python/alert-rules").json()[0]
    path = f"/projects/python/alert-rules/{rule['id']}"
    response = call(stack, "PATCH", path, {"trigger": "event_frequency"})
    assert response.status_code == 422 and "needs threshold" in response.json()["detail"]
    assert call(stack, "PATCH", path, {"colour": "red"}).status_code == 422  # unknown field
    assert call(stack, "PATCH", path, {"cooldown_minutes": None}).status_code == 422
    assert stack.api("/projects/python/alert-rules").json()[0] == rule


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"kind": "pager", "config": {}}, "unknown channel kind 'pager'"),
        ({"kind": "email", "config": {"to": ["not-an-address"]}}, "not-an-address"),
        ({"kind": "webhook", "config": {"url": "ftp://example.com/hook"}}, "url"),
        ({"kind": "email", "config": {"to": ["a@example.com"]}, "hourly_cap": 0}, "hourly_cap"),
        ({"kind": "email", "config": {"to": ["a@example.com"]}, "name": " "}, "a channel needs a name"),
    ],
)
def test_invalid_channels_are_refused_with_a_message(stack: Stack, body: dict[str, Any], message: str) -> None:
    response = call(stack, "POST", "/projects/python/alert-channels", {"name": "bad", **body})
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert len(channels(stack)) == 1


def test_typed_bodies_refuse_unknown_fields_and_wrong_types(stack: Stack) -> None:
    body = {"name": "x", "kind": "email", "config": {"to": []}, "secret_flag": True}
    assert call(stack, "POST", "/projects/python/alert-channels", body).status_code == 422
    body = {"name": "x", "kind": "email", "config": "to=a@example.com"}
    assert call(stack, "POST", "/projects/python/alert-channels", body).status_code == 422
    body = {"name": "x", "trigger": "new_issue", "channels": "1"}
    assert call(stack, "POST", "/projects/python/alert-rules", body).status_code == 422


def test_unknown_project_is_404(stack: Stack) -> None:
    for method, path in [
        ("GET", "/projects/nope/alert-channels"),
        ("POST", "/projects/nope/alert-channels"),
        ("DELETE", "/projects/nope/alert-channels/1"),
        ("POST", "/projects/nope/alert-channels/1/test"),
        ("GET", "/projects/nope/alert-rules"),
        ("POST", "/projects/nope/alert-rules"),
        ("PATCH", "/projects/nope/alert-rules/1"),
        ("DELETE", "/projects/nope/alert-rules/1"),
        ("GET", "/projects/nope/alert-outbox"),
    ]:
        body = None
        if method == "POST" and path.endswith("channels"):
            body = {"name": "x", "kind": "email", "config": {"to": ["a@example.com"]}}
        elif method == "POST" and path.endswith("rules"):
            body = {"name": "x", "trigger": "new_issue", "channels": [1]}
        elif method == "PATCH":
            body = {"enabled": False}
        assert call(stack, method, path, body).status_code == 404, (method, path)


def test_every_endpoint_needs_a_token(stack: Stack) -> None:
    for method, path in [
        ("GET", "/projects/python/alert-channels"),
        ("POST", "/projects/python/alert-channels"),
        ("DELETE", "/projects/python/alert-channels/1"),
        ("POST", "/projects/python/alert-channels/1/test"),
        ("GET", "/projects/python/alert-rules"),
        ("POST", "/projects/python/alert-rules"),
        ("PATCH", "/projects/python/alert-rules/1"),
        ("DELETE", "/projects/python/alert-rules/1"),
        ("GET", "/projects/python/alert-outbox"),
    ]:
        assert stack.client.request(method, f"/api/v1{path}", json={}).status_code == 401, (method, path)
    assert len(channels(stack)) == 1  # and nothing happened


def test_secrets_never_appear_in_answers(stack: Stack) -> None:
    answers = [
        call(stack, "POST", "/projects/python/alert-channels", body)
        for body in (
            {
                "name": "hook",
                "kind": "webhook",
                "config": {"url": "https://hooks.example.com/in", "secret": WEBHOOK_SECRET},
            },
            {"name": "slack", "kind": "slack", "config": {"url": f"https://hooks.slack.com{SLACK_PATH}"}},
        )
    ]
    assert [a.status_code for a in answers] == [201, 201]
    hook, slack = (a.json() for a in answers)
    assert hook["config"]["secret"] == "set" and hook["config"]["url"].startswith("https://hooks.example.com")
    assert slack["config"]["url"].startswith("https://hooks.slack.com")
    rule = {"name": "all", "trigger": "new_issue", "channels": [hook["id"], slack["id"]]}
    answers += [
        call(stack, "POST", "/projects/python/alert-rules", rule),
        stack.api("/projects/python/alert-channels"),
        stack.api("/projects/python/alert-rules"),
        stack.api("/projects/python/alert-outbox"),
        stack.client.get("/api/v1/openapi.json"),
    ]
    for answer in answers:
        assert answer.status_code in (200, 201), answer.text
        assert WEBHOOK_SECRET not in answer.text and SLACK_PATH not in answer.text
        assert "slackpathsecret42" not in answer.text


def test_test_action_delivers_a_signed_webhook(stack: Stack) -> None:
    with RecordingServer() as receiver:
        hook = webhook(stack, f"{receiver.url}/hook")
        response = call(stack, "POST", f"/projects/python/alert-channels/{hook['id']}/test")
        assert response.status_code == 200, response.text
        assert response.json() == {"delivered": True}
        (request,) = receiver.wait_for(1)
    assert request.method == "POST" and request.path == "/hook"
    expected = sign(WEBHOOK_SECRET, request.headers["x-stackwatch-timestamp"], request.body)
    assert request.headers["x-stackwatch-signature"] == expected
    notification = request.json()["notification"]
    assert notification["reason"] == "Test notification"
    assert notification["title"] == "Test notification from Stackwatch"
    assert notification["issue_id"] == 0 and notification["project"] == "python"
    assert notification["url"].endswith("/projects/python")
    shown = channels(stack)[hook["id"]]
    assert shown["healthy"] is True and shown["last_success_at"] is not None and shown["last_error"] is None


def test_failing_tests_answer_502_and_mark_the_channel_unhealthy(stack: Stack) -> None:
    with RecordingServer() as receiver:
        receiver.default = Answer(500, b"database is down")
        hook = webhook(stack, f"{receiver.url}/hook")
        path = f"/projects/python/alert-channels/{hook['id']}/test"
        for attempt in (1, 2, 3):
            response = call(stack, "POST", path)
            assert response.status_code == 502, response.text
            answer = response.json()
            assert answer["delivered"] is False and answer["permanent"] is False
            assert "HTTP 500" in answer["error"]
            shown = channels(stack)[hook["id"]]
            assert shown["consecutive_failures"] == attempt
            assert shown["healthy"] is (attempt < 3)
            assert "HTTP 500" in shown["last_error"] and shown["last_failure_at"] is not None

        receiver.answer(404, b"no such hook")
        answer = call(stack, "POST", path).json()
        assert answer["delivered"] is False and answer["permanent"] is True

        receiver.answer(204)
        assert call(stack, "POST", path).json() == {"delivered": True}
        assert len(receiver.requests) == 5
    shown = channels(stack)[hook["id"]]
    assert shown["healthy"] is True and shown["consecutive_failures"] == 0


def test_test_action_of_an_unknown_channel_is_404(stack: Stack) -> None:
    theirs = admins_channel(stack, "node")
    assert call(stack, "POST", f"/projects/python/alert-channels/{theirs}/test").status_code == 404
    assert call(stack, "POST", "/projects/python/alert-channels/999999/test").status_code == 404


def test_outbox_lists_what_was_sent_or_is_waiting(stack: Stack) -> None:
    # An SMTP host, so that the default e-mail channel does not wait for one (its notifications would be dropped).
    with_smtp = dataclasses.replace(stack.settings, smtp_host="127.0.0.1")
    stack.services.digester.waiting_kinds = channel_modules.waiting_kinds(with_smtp)
    assert stack.api("/projects/python/alert-outbox").json() == []
    support.send_ok(stack, support.exception_event("KeyError", "order_id"))
    stack.digest()
    (item,) = stack.api("/projects/python/alert-outbox").json()
    new_issue = next(r["id"] for r in stack.api("/projects/python/alert-rules").json() if r["name"] == "New issue")
    assert item["status"] == "pending" and item["attempts"] == 0 and item["sent_at"] is None
    assert (item["rule_id"], item["channel_id"]) == (new_issue, admins_channel(stack))
    assert item["reason"] == "New issue" and "KeyError" in item["title"]
    assert item["issue_id"] is not None and item["idempotency_key"] and item["created_at"].endswith("Z")
    assert stack.api("/projects/python/alert-outbox", status="pending").json() == [item]
    assert stack.api("/projects/python/alert-outbox", status="sent").json() == []
    assert stack.api("/projects/node/alert-outbox").json() == []
    assert stack.api("/projects/python/alert-outbox", status="lost").status_code == 422
    assert stack.api("/projects/python/alert-outbox", limit=0).status_code == 422

    Dispatcher(stack.services.engine, with_smtp).run_once()  # no administrator to mail: a permanent failure
    (failed,) = stack.api("/projects/python/alert-outbox", status="failed").json()
    assert failed["id"] == item["id"] and failed["attempts"] == 1 and "no recipients" in failed["last_error"]
