"""Snoozing an issue: ignored until a condition is met, then unresolved again by itself ("escalating").

Each condition goes through the real digest (events sent over HTTP ingest), the activity log records the return,
an ``escalating`` alert rule fires for it, the periodic pass wakes issues whose time has passed, bad conditions
are 422s, and the issue page's Ignore choices snooze over HTTP with the CSRF token.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from stackwatch.server.alerts import manage
from stackwatch.server.storage.db import now
from stackwatch.server.storage.schema import alert_outbox, issues
from tests.alert_support import only_webhook_channel
from tests.conftest import Stack
from tests.support import exception_event, issue_of, send_ok
from tests.test_web_auth import add_user, csrf_of, login


def _event(**fields: Any) -> dict[str, Any]:
    return exception_event("RuntimeError", "queue stalled", **fields)


def _send(stack: Stack, count: int = 1, **fields: Any) -> str:
    event_id = ""
    for _ in range(count):
        event_id = send_ok(stack, _event(**fields))
    stack.digest()
    return event_id


def _issue(stack: Stack) -> int:
    return issue_of(stack, _send(stack))


def _patch(stack: Stack, issue_id: int, body: Any) -> httpx.Response:
    return stack.client.patch(
        f"/api/v1/issues/{issue_id}", json=body, headers={"Authorization": f"Bearer {stack.token}"}
    )


def _snooze(stack: Stack, issue_id: int, condition: dict[str, Any]) -> dict[str, Any]:
    response = _patch(stack, issue_id, {"status": "ignored", "ignore": condition})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "ignored"
    return body


def _state(stack: Stack, issue_id: int) -> tuple[str, Any]:
    body = stack.api(f"/issues/{issue_id}").json()
    return body["status"], body["ignore"]


def _activity(stack: Stack, issue_id: int) -> list[dict[str, Any]]:
    return list(stack.api(f"/issues/{issue_id}/activity").json()["data"])


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).isoformat().replace("+00:00", "Z")


def test_events_bring_it_back_after_n_more(stack: Stack) -> None:
    issue_id = _issue(stack)
    assert _snooze(stack, issue_id, {"events": 3})["ignore"] == {"events": 3, "at_count": 4}
    _send(stack, 2)
    assert _state(stack, issue_id) == ("ignored", {"events": 3, "at_count": 4})
    _send(stack)
    assert _state(stack, issue_id) == ("unresolved", None)
    entries = _activity(stack, issue_id)
    assert [(e["kind"], e["actor"]) for e in entries] == [("status", "tests"), ("escalating", "Stackwatch")]
    assert entries[0]["data"] == {"from": "unresolved", "to": "ignored", "ignore": {"events": 3}}
    assert entries[1]["data"] == {
        "from": "ignored",
        "to": "unresolved",
        "condition": {"events": 3, "at_count": 4},
    }
    _send(stack)  # unresolved already: nothing more happens
    assert [e["kind"] for e in _activity(stack, issue_id)] == ["status", "escalating"]


def test_users_bring_it_back_after_n_more_distinct_users(stack: Stack) -> None:
    issue_id = issue_of(stack, _send(stack, user={"id": "u0"}))
    assert _snooze(stack, issue_id, {"users": 2})["ignore"] == {"users": 2, "at_user_count": 3}
    _send(stack, 3, user={"id": "u0"})  # the same user again: no new user
    _send(stack, user={"id": "u1"})
    assert _state(stack, issue_id)[0] == "ignored"
    _send(stack, user={"id": "u2"})
    assert _state(stack, issue_id) == ("unresolved", None)
    assert _activity(stack, issue_id)[-1]["data"]["condition"] == {"users": 2, "at_user_count": 3}


def test_per_hour_counts_the_last_60_minutes(stack: Stack) -> None:
    issue_id = _issue(stack)
    assert _snooze(stack, issue_id, {"per_hour": 4})["ignore"] == {"per_hour": 4}
    _send(stack, 2)
    assert _state(stack, issue_id)[0] == "ignored"  # 3 in the hour, with the first one
    _send(stack)
    assert _state(stack, issue_id) == ("unresolved", None)
    assert _activity(stack, issue_id)[-1]["data"]["condition"] == {"per_hour": 4}


def test_per_hour_does_not_count_older_minutes(stack: Stack) -> None:
    issue_id = _issue(stack)
    _snooze(stack, issue_id, {"per_hour": 3})
    with stack.services.engine.begin() as connection:  # the first event came more than an hour ago
        from stackwatch.server.storage.schema import issue_minutes

        connection.execute(update(issue_minutes).values(minute=issue_minutes.c.minute - 61))
    _send(stack, 2)
    assert _state(stack, issue_id)[0] == "ignored"
    _send(stack)
    assert _state(stack, issue_id)[0] == "unresolved"


def test_until_comes_back_in_the_periodic_pass(stack: Stack) -> None:
    issue_id = _issue(stack)
    until = now() + 3600
    assert _snooze(stack, issue_id, {"until": _iso(until)})["ignore"] == {"until": _iso(until)}
    digester = stack.services.digester
    assert digester.wake_snoozed(until - 60) == []
    assert _state(stack, issue_id)[0] == "ignored"
    assert digester.wake_snoozed(until + 1) == [issue_id]
    assert _state(stack, issue_id) == ("unresolved", None)
    entry = _activity(stack, issue_id)[-1]
    assert (entry["kind"], entry["data"]["condition"]) == ("escalating", {"until": _iso(until)})
    assert digester.wake_snoozed(until + 2) == []  # once


def test_the_worker_housekeeping_runs_the_pass(stack: Stack) -> None:
    issue_id = _issue(stack)
    _snooze(stack, issue_id, {"until": _iso(now() + 3600)})
    with stack.services.engine.begin() as connection:  # its time has passed
        connection.execute(update(issues).values(snooze_threshold=now() - 1))
    stack.services.digester.tidy(idle=True)
    assert _state(stack, issue_id) == ("unresolved", None)


def test_until_comes_back_with_the_first_event_after_it(stack: Stack) -> None:
    issue_id = _issue(stack)
    _snooze(stack, issue_id, {"until": _iso(now() + 3600)})
    _send(stack)
    assert _state(stack, issue_id)[0] == "ignored"  # before the time: an event does not wake it
    with stack.services.engine.begin() as connection:  # the time has passed, the periodic pass has not run
        connection.execute(update(issues).values(snooze_threshold=now() - 1))
    _send(stack)
    assert _state(stack, issue_id) == ("unresolved", None)
    assert _activity(stack, issue_id)[-1]["kind"] == "escalating"


def test_plain_ignore_stays_ignored_and_status_changes_clear_the_snooze(stack: Stack) -> None:
    issue_id = _issue(stack)
    plain = _patch(stack, issue_id, {"status": "ignored"})
    assert plain.status_code == 200 and plain.json()["ignore"] is None
    _send(stack, 5)
    assert _state(stack, issue_id) == ("ignored", None)
    _snooze(stack, issue_id, {"events": 1})
    resolved = _patch(stack, issue_id, {"status": "resolved"})
    assert resolved.json()["ignore"] is None
    assert _patch(stack, issue_id, {"status": "ignored", "ignore": {"events": 1}}).status_code == 200
    assert _patch(stack, issue_id, {"status": "ignored"}).json()["ignore"] is None  # forever now
    _send(stack, 2)
    assert _state(stack, issue_id) == ("ignored", None)
    assert "escalating" not in [e["kind"] for e in _activity(stack, issue_id)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"status": "ignored", "ignore": {"events": 0}}, "from 1 to 1000000000"),
        ({"status": "ignored", "ignore": {"events": 10**9 + 1}}, "from 1 to 1000000000"),
        ({"status": "ignored", "ignore": {"users": -3}}, "from 1 to"),
        ({"status": "ignored", "ignore": {"per_hour": 2.5}}, "whole number"),
        ({"status": "ignored", "ignore": {"per_hour": True}}, "whole number"),
        ({"status": "ignored", "ignore": {"events": "10"}}, "whole number"),
        ({"status": "ignored", "ignore": {"until": "2001-01-01T00:00:00Z"}}, "in the future"),
        ({"status": "ignored", "ignore": {"until": "tomorrow"}}, "not an ISO 8601 time"),
        ({"status": "ignored", "ignore": {"until": "9999-12-31T23:59:59-23:59"}}, "at most 100 years"),
        ({"status": "ignored", "ignore": {"until": "2030-02-30T00:00:00Z"}}, "not an ISO 8601 time"),
        ({"status": "ignored", "ignore": {"until": 12}}, "ISO 8601"),
        ({"status": "ignored", "ignore": {"minutes": 5}}, "unknown condition"),
        ({"status": "ignored", "ignore": {}}, "one of until"),
        ({"status": "ignored", "ignore": {"events": 1, "users": 1}}, "one of until"),
        ({"status": "resolved", "ignore": {"events": 1}}, "goes with"),
        ({"ignore": {"events": 1}}, "goes with"),
        ({"ignore": None}, "goes with"),
    ],
)
def test_bad_conditions_are_422(stack: Stack, body: dict[str, Any], message: str) -> None:
    issue_id = _issue(stack)
    response = _patch(stack, issue_id, body)
    assert response.status_code == 422, response.text
    assert message in response.text
    assert _state(stack, issue_id) == ("unresolved", None)


def test_ignore_must_be_an_object(stack: Stack) -> None:
    issue_id = _issue(stack)
    assert _patch(stack, issue_id, {"status": "ignored", "ignore": [1]}).status_code == 422
    assert _patch(stack, issue_id, {"status": "ignored", "ignore": "forever"}).status_code == 422


# --- the escalating alert trigger -----------------------------------------------------------------------------


def _rules(stack: Stack, *triggers: str) -> None:
    """Only these rules, on one webhook channel (never contacted here)."""
    with stack.services.engine.begin() as connection:
        channel = only_webhook_channel(connection)
        for trigger in triggers:
            spec = {"name": trigger, "trigger": trigger, "cooldown_minutes": 0, "channels": [channel]}
            manage.create_rule(connection, 1, spec)


def _reasons(stack: Stack) -> list[str]:
    with stack.services.engine.connect() as connection:
        rows = connection.execute(select(alert_outbox.c.payload).order_by(alert_outbox.c.id)).scalars().all()
    return [json.loads(payload)["reason"] for payload in rows]


def test_the_escalating_trigger_fires_when_events_wake_the_issue(stack: Stack) -> None:
    _rules(stack, "escalating", "regression")
    issue_id = _issue(stack)
    _snooze(stack, issue_id, {"events": 2})
    _send(stack)
    assert _reasons(stack) == []  # still snoozed
    _send(stack)
    assert _reasons(stack) == ["Escalating"]  # not a regression: it was ignored, not resolved
    _send(stack)
    assert _reasons(stack) == ["Escalating"]  # unresolved now: once


def test_the_escalating_trigger_is_a_valid_rule_and_ignores_plain_events(stack: Stack) -> None:
    _rules(stack, "escalating")
    with stack.services.engine.connect() as connection:
        assert [r["trigger"] for r in manage.list_rules(connection, 1)] == ["escalating"]
    _send(stack, 3)  # new issue and more events, never snoozed
    assert _reasons(stack) == []


# --- the issue page -------------------------------------------------------------------------------------------


def test_the_page_snoozes_with_its_ignore_choices(stack: Stack) -> None:
    issue_id = _issue(stack)
    add_user(stack, "admin@example.com", admin=True)
    client = TestClient(stack.app)
    login(client, "admin@example.com")
    page = client.get(f"/issues/{issue_id}")
    assert page.status_code == 200
    for choice in ("forever", "1h", "24h", "7d", "events-10", "events-100", "per-hour-100"):
        assert f'<option value="{choice}">' in page.text
    token = csrf_of(page)
    refused = client.post(
        f"/issues/{issue_id}/status", data={"action": "ignore", "snooze": "24h"}, follow_redirects=False
    )
    assert refused.status_code == 403  # no CSRF token
    assert _state(stack, issue_id) == ("unresolved", None)
    started = now()
    sent = client.post(
        f"/issues/{issue_id}/status",
        data={"csrf_token": token, "action": "ignore", "snooze": "24h"},
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    status, condition = _state(stack, issue_id)
    until = datetime.fromisoformat(condition["until"].replace("Z", "+00:00"))
    assert status == "ignored"
    assert timedelta(hours=24) <= until - datetime.fromtimestamp(started, UTC) <= timedelta(hours=24, minutes=1)
    assert "Snoozed: comes back as unresolved after" in client.get(f"/issues/{issue_id}").text
    more = {"csrf_token": token, "action": "ignore", "snooze": "events-10"}
    assert client.post(f"/issues/{issue_id}/status", data=more, follow_redirects=False).status_code == 303
    assert _state(stack, issue_id) == ("ignored", {"events": 10, "at_count": 11})
    bad = {"csrf_token": token, "action": "resolve", "snooze": "events-10"}
    assert client.post(f"/issues/{issue_id}/status", data=bad, follow_redirects=False).status_code == 400
    unknown = {"csrf_token": token, "action": "ignore", "snooze": "forever-and-ever"}
    assert client.post(f"/issues/{issue_id}/status", data=unknown, follow_redirects=False).status_code == 400
    assert _state(stack, issue_id) == ("ignored", {"events": 10, "at_count": 11})
    reopen = {"csrf_token": token, "action": "reopen"}
    assert client.post(f"/issues/{issue_id}/status", data=reopen, follow_redirects=False).status_code == 303
    assert _state(stack, issue_id) == ("unresolved", None)
    text = [e["data"] for e in _activity(stack, issue_id)]
    assert text[0]["ignore"]["until"] == condition["until"]
