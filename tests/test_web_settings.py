"""The dashboard's settings pages: DSN keys, members, retention, alert channels and rules, API tokens; who may do
what, validation, CSRF and escaping (both backends)."""

from __future__ import annotations

import dataclasses
import html
import inspect
import re
import time
from typing import Any

import httpx
from sqlalchemy import select, update
from starlette.testclient import TestClient

from stackwatch.server import retention
from stackwatch.server.alerts import manage
from stackwatch.server.ingest.auth import KeyCache
from stackwatch.server.storage import accounts
from stackwatch.server.storage.schema import (
    alert_channels,
    alert_rule_channels,
    alert_rules,
    api_tokens,
    project_keys,
    project_members,
    projects,
)
from tests.alert_support import Answer, RecordingServer
from tests.conftest import PYTHON_KEY, Stack
from tests.support import message_event, send
from tests.test_web_auth import add_user, csrf_of, login

SETTINGS = "/projects/python/settings"
TOKENS = "/account/tokens"
SCRIPT = "<script>alert(1)</script>"
CACHE_TTL = float(inspect.signature(KeyCache.__init__).parameters["ttl"].default)


def admin(stack: Stack, email: str = "admin@example.com") -> TestClient:
    """The stack's client, logged in as an administrator."""
    add_user(stack, email, admin=True)
    assert login(stack.client, email).status_code == 303
    return stack.client


def member(stack: Stack, slug: str = "python", email: str = "dev@example.com") -> TestClient:
    """A second client, logged in as a non-administrator who is a member of ``slug``."""
    add_user(stack, email)
    with stack.services.engine.begin() as connection:
        accounts.add_member(connection, slug, email)
    client = TestClient(stack.app)
    assert login(client, email).status_code == 303
    return client


def post(client: TestClient, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True) -> httpx.Response:
    fields: dict[str, Any] = dict(data or {})
    if csrf:
        fields["csrf_token"] = csrf_of(client.get(TOKENS))
    return client.post(path, data=fields, follow_redirects=False)


def snapshot(stack: Stack) -> dict[str, list[tuple[Any, ...]]]:
    """Everything the settings pages can change, to show that a refused request changed nothing."""
    tables = (projects, project_keys, project_members, alert_channels, alert_rules, alert_rule_channels, api_tokens)
    with stack.services.engine.connect() as connection:
        return {table.name: sorted(tuple(row) for row in connection.execute(select(table))) for table in tables}


def keys(stack: Stack, project_id: int = 1) -> list[Any]:
    with stack.services.engine.connect() as connection:
        query = select(project_keys).where(project_keys.c.project_id == project_id).order_by(project_keys.c.id)
        return list(connection.execute(query))


def auth(public_key: str) -> str:
    return f"Sentry sentry_key={public_key}, sentry_version=7, sentry_client=tests/1.0"


def channel_ids(stack: Stack, project_id: int = 1) -> dict[str, int]:
    with stack.services.engine.connect() as connection:
        return {c["name"]: c["id"] for c in manage.list_channels(connection, project_id)}


def rules(stack: Stack, project_id: int = 1) -> dict[str, dict[str, Any]]:
    with stack.services.engine.connect() as connection:
        return {r["name"]: r for r in manage.list_rules(connection, project_id)}


def error_text(page: httpx.Response) -> str:
    match = re.search(r'<p class="error" role="alert">(.*?)</p>', page.text, re.S)
    assert match, page.text
    return html.unescape(match.group(1))


def every_post(stack: Stack) -> list[tuple[str, dict[str, Any]]]:
    """One valid request for every state-changing settings action on the python project."""
    channel = channel_ids(stack)["Administrators"]
    rule = rules(stack)["New issue"]["id"]
    return [
        (f"{SETTINGS}/keys", {"label": "CI"}),
        (f"{SETTINGS}/keys/1/revoke", {}),
        (f"{SETTINGS}/keys/1/rate-limit", {"rate_limit": "10"}),
        (f"{SETTINGS}/keys/1/attachment-limits", {"attachment_rate_limit": "10"}),
        (f"{SETTINGS}/members", {"email": "admin@example.com"}),
        (f"{SETTINGS}/members/remove", {"email": "dev@example.com"}),
        (f"{SETTINGS}/retention", {"retention_days": "7", "max_events": "50"}),
        (f"{SETTINGS}/grouping", {"grouping_version": "1", "stacktrace_rules": "", "fingerprint_rules": ""}),
        (f"{SETTINGS}/channels", {"name": "ops", "kind": "slack", "url": "https://hooks.slack.com/services/T/B/x"}),
        (f"{SETTINGS}/channels/{channel}/delete", {}),
        (f"{SETTINGS}/channels/{channel}/test", {}),
        (f"{SETTINGS}/rules", {"name": "r", "trigger": "new_issue", "channel": str(channel), "enabled": "1"}),
        (f"{SETTINGS}/rules/{rule}", {"name": "r", "trigger": "regression", "channel": str(channel)}),
        (f"{SETTINGS}/rules/{rule}/enabled", {"enabled": "0"}),
        (f"{SETTINGS}/rules/{rule}/delete", {}),
    ]


def test_an_administrator_sees_every_section_with_its_forms(stack: Stack) -> None:
    client = admin(stack)
    page = client.get(SETTINGS)
    assert page.status_code == 200, page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    text = page.text
    assert accounts.dsn(stack.settings.base_url, PYTHON_KEY, 1) in text
    for heading in ("Client keys (DSN)", "Members", "Retention", "Grouping", "Alert channels", "Alert rules"):
        assert f"<h2>{heading}</h2>" in text
    assert "Administrators" in text and "the administrators" in text
    assert "New issue" in text and "Regression" in text and "Fatal in production" in text
    assert "environment=production" in text
    for action in (
        "/keys",
        "/keys/1/revoke",
        "/keys/1/rate-limit",
        "/members",
        "/retention",
        "/grouping",
        "/channels",
        "/rules",
    ):
        assert f'action="{SETTINGS}{action}"' in text
    assert 'aria-current="page"' in text and f'href="{SETTINGS}"' in text  # the project nav, on "Settings"
    tokens = client.get(TOKENS)
    assert tokens.status_code == 200 and 'action="/account/tokens"' in tokens.text
    assert 'href="/account/tokens"' in text  # the account bar links to the tokens


def test_logged_out_users_are_sent_to_login_and_cannot_post(stack: Stack) -> None:
    for path in (SETTINGS, TOKENS):
        answer = stack.client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == f"/login?next={path}"
    before = snapshot(stack)
    for path, data in [*every_post(stack), (TOKENS, {"name": "x"})]:
        assert post(stack.client, path, data, csrf=False).status_code == 403, path
    assert snapshot(stack) == before


def test_a_member_reads_everything_but_every_change_is_refused(stack: Stack) -> None:
    add_user(stack, "admin@example.com", admin=True)
    client = member(stack)
    page = client.get(SETTINGS)
    assert page.status_code == 200
    assert accounts.dsn(stack.settings.base_url, PYTHON_KEY, 1) in page.text
    assert "dev@example.com" in page.text and "Administrators" in page.text and "New issue" in page.text
    assert page.text.count("<form") == 1 and 'action="/logout"' in page.text  # only the account's logout form
    assert "Only administrators can change these settings." in page.text
    before = snapshot(stack)
    for path, data in every_post(stack):
        answer = post(client, path, data)
        assert answer.status_code == 403, (path, answer.text)
        assert "Only administrators" in answer.text
    assert snapshot(stack) == before


def test_users_of_another_project_get_404_like_a_missing_project(stack: Stack) -> None:
    client = member(stack, "node")
    hidden, missing = client.get(SETTINGS), client.get("/projects/no-such-project/settings")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.text == missing.text
    before = snapshot(stack)
    for path, data in every_post(stack):
        assert post(client, path, data).status_code == 404, path
    assert snapshot(stack) == before


def test_a_created_key_takes_events_and_a_revoked_key_is_refused(stack: Stack) -> None:
    client = admin(stack)
    created = post(client, f"{SETTINGS}/keys", {"label": "CI runners", "rate_limit": ""})
    assert created.status_code == 303 and created.headers["location"] == SETTINGS
    new = keys(stack)[-1]
    assert new.label == "CI runners" and new.active and new.rate_limit_per_minute is None
    page = client.get(SETTINGS).text
    assert accounts.dsn(stack.settings.base_url, new.public_key, 1) in page and "CI runners" in page
    assert send(stack, message_event("with the new key"), auth=auth(new.public_key)).status_code == 200

    revoked = post(client, f"{SETTINGS}/keys/{new.id}/revoke")
    assert revoked.status_code == 303
    row = keys(stack)[-1]
    assert row.id == new.id and not row.active  # kept as a record, not deleted
    assert "revoked" in client.get(SETTINGS).text
    time.sleep(CACHE_TTL + 0.2)  # ingest caches keys for CACHE_TTL seconds
    refused = send(stack, message_event("with the revoked key"), auth=auth(new.public_key))
    assert refused.status_code == 403 and "revoked" in refused.text
    assert send(stack, message_event("the old key still works")).status_code == 200


def test_a_key_of_another_project_or_a_missing_key_is_not_found(stack: Stack) -> None:
    client = admin(stack)
    node_key = keys(stack, 2)[0]
    before = snapshot(stack)
    for path in (f"{SETTINGS}/keys/{node_key.id}/revoke", f"{SETTINGS}/keys/999/revoke", f"{SETTINGS}/keys/x/revoke"):
        assert post(client, path).status_code == 404, path
    assert post(client, f"{SETTINGS}/keys/{node_key.id}/rate-limit", {"rate_limit": "5"}).status_code == 404
    assert snapshot(stack) == before


def test_a_rate_limit_is_set_shown_enforced_and_cleared(stack: Stack) -> None:
    client = admin(stack)
    assert post(client, f"{SETTINGS}/keys/1/rate-limit", {"rate_limit": " 1 "}).status_code == 303
    assert keys(stack)[0].rate_limit_per_minute == 1
    assert re.search(r'<span class="rate">1</span>', client.get(SETTINGS).text)
    assert send(stack, message_event("first")).status_code == 200
    assert send(stack, message_event("second")).status_code == 429
    assert post(client, f"{SETTINGS}/keys/1/rate-limit", {"rate_limit": ""}).status_code == 303
    assert keys(stack)[0].rate_limit_per_minute is None
    assert '<span class="rate">none</span>' in client.get(SETTINGS).text
    created = post(client, f"{SETTINGS}/keys", {"label": "limited", "rate_limit": "600"})
    assert created.status_code == 303 and keys(stack)[-1].rate_limit_per_minute == 600


def test_invalid_key_forms_answer_400_and_change_nothing(stack: Stack) -> None:
    client = admin(stack)
    before = snapshot(stack)
    cases = [
        (f"{SETTINGS}/keys", {"label": "", "rate_limit": ""}, "label must be 1 to 200 characters"),
        (f"{SETTINGS}/keys", {"label": "   ", "rate_limit": ""}, "label must be 1 to 200 characters"),
        (f"{SETTINGS}/keys", {"label": "x" * 201, "rate_limit": ""}, "label must be 1 to 200 characters"),
        (f"{SETTINGS}/keys", {"label": "ok", "rate_limit": "abc"}, "rate limit must be a whole number"),
        (f"{SETTINGS}/keys", {"label": "ok", "rate_limit": "-1"}, "rate limit must be a whole number"),
        (f"{SETTINGS}/keys", {"label": "ok", "rate_limit": "0"}, "rate limit must be a whole number"),
        (f"{SETTINGS}/keys", {"label": "ok", "rate_limit": "99999999999999999999"}, "from 1 to 1000000"),
        (f"{SETTINGS}/keys/1/rate-limit", {"rate_limit": "abc"}, "rate limit must be a whole number"),
        (f"{SETTINGS}/keys/1/rate-limit", {"rate_limit": "1000001"}, "rate limit must be a whole number"),
        (f"{SETTINGS}/keys/1/rate-limit", {"rate_limit": "1.5"}, "rate limit must be a whole number"),
    ]
    for path, data, message in cases:
        answer = post(client, path, data)
        assert answer.status_code == 400, (data, answer.text)
        assert message in error_text(answer), data
        assert "<h2>Client keys (DSN)</h2>" in answer.text  # the settings page again
    assert snapshot(stack) == before


def test_members_are_added_and_removed(stack: Stack) -> None:
    add_user(stack, "dev@example.com")
    developer = TestClient(stack.app)
    login(developer, "dev@example.com")
    assert 'href="/projects/python/issues"' not in developer.get("/").text
    assert developer.get("/projects/python/issues").status_code == 404

    client = admin(stack)
    assert post(client, f"{SETTINGS}/members", {"email": " Dev@Example.com "}).status_code == 303
    assert "dev@example.com" in client.get(SETTINGS).text
    assert 'href="/projects/python/issues"' in developer.get("/").text
    assert developer.get("/projects/python/issues").status_code == 200
    assert post(client, f"{SETTINGS}/members", {"email": "dev@example.com"}).status_code == 303  # already: no-op

    assert post(client, f"{SETTINGS}/members/remove", {"email": "dev@example.com"}).status_code == 303
    assert 'href="/projects/python/issues"' not in developer.get("/").text
    assert developer.get("/projects/python/issues").status_code == 404
    assert developer.get(SETTINGS).status_code == 404


def test_unknown_member_emails_answer_400_and_change_nothing(stack: Stack) -> None:
    client = admin(stack)
    before = snapshot(stack)
    for path, email in ((f"{SETTINGS}/members", "nobody@example.com"), (f"{SETTINGS}/members/remove", "x@y.z")):
        answer = post(client, path, {"email": email})
        assert answer.status_code == 400
        assert f"There is no user with the email address {email}." in error_text(answer)
    answer = post(client, f"{SETTINGS}/members", {"email": ""})
    assert answer.status_code == 400 and "Enter the email address" in error_text(answer)
    assert snapshot(stack) == before


def retention_row(stack: Stack, slug: str = "python") -> tuple[int | None, int | None]:
    with stack.services.engine.connect() as connection:
        row = connection.execute(
            select(projects.c.retention_days, projects.c.max_events).where(projects.c.slug == slug)
        ).one()
    return row.retention_days, row.max_events


def retention_line(page: httpx.Response) -> str:
    """The read-only line of the retention section, as a reader sees it."""
    match = re.search(r'<p class="retention-stored">(.*?)</p>', page.text, re.S)
    assert match, page.text
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", match.group(1))).split())


def field_errors(page: httpx.Response) -> dict[str, str]:
    """The messages shown next to the retention form's fields, by field."""
    found = re.findall(r'<span class="error field-error" id="([a-z_]+)-error">(.*?)</span>', page.text, re.S)
    return {name: html.unescape(message) for name, message in found}


def field_value(page: httpx.Response, name: str) -> str:
    match = re.search(rf'<input type="text" name="{name}"[^>]*?value="([^"]*)"', page.text)
    assert match, page.text
    return html.unescape(match.group(1))


def test_retention_shows_what_is_stored_and_the_server_defaults(stack: Stack) -> None:
    client = admin(stack)
    page = client.get(SETTINGS)
    days, events = stack.settings.retention_days, stack.settings.retention_max_events
    assert retention_line(page) == (
        f"Stored now: 0 events, 0 bytes. In force: {days} days (server default), "
        f"at most {events:,} events (server default)."
    )
    assert f'placeholder="server default ({days})"' in page.text
    assert f'placeholder="server default ({events:,})"' in page.text
    assert field_value(page, "retention_days") == field_value(page, "max_events") == ""
    for n in range(3):
        assert send(stack, message_event(f"stored {n}")).status_code == 200
    assert stack.digest() == 3
    with stack.services.engine.connect() as connection:
        count, size = retention.stored_totals(connection, [1])[1]
    assert count == 3 and size > 0
    shown = retention_line(client.get(SETTINGS))
    assert shown.startswith(f"Stored now: 3 events, {size_text(size)}. "), shown


def size_text(count: int) -> str:
    """What the page shows for ``count`` bytes (binary units, as the ``size`` filter does)."""
    return f"{count} bytes" if count < 1024 else f"{count / 1024:.1f}".removesuffix(".0") + " KB"


def test_retention_is_set_shown_applied_and_cleared(stack: Stack) -> None:
    client = admin(stack)
    for _ in range(4):
        assert send(stack, message_event("the same message"), project_id=1).status_code == 200
        assert stack.digest() == 1  # one event at a time, so they have distinct receive times
    changed = post(client, f"{SETTINGS}/retention", {"retention_days": " 7 ", "max_events": "2"})
    assert changed.status_code == 303 and changed.headers["location"] == SETTINGS
    assert retention_row(stack) == (7, 2)
    assert retention_row(stack, "node") == (None, None)  # the other project keeps the server's
    page = client.get(SETTINGS)
    assert "In force: 7 days, at most 2 events." in retention_line(page)
    assert field_value(page, "retention_days") == "7" and field_value(page, "max_events") == "2"
    # The worker's next pass applies them: the issue's first and latest events are kept.
    assert stack.services.digester.retention is not None
    assert stack.services.digester.retention.run_pass().events == 2
    assert retention_line(client.get(SETTINGS)).startswith("Stored now: 2 events, ")

    assert post(client, f"{SETTINGS}/retention", {"retention_days": "", "max_events": "0"}).status_code == 303
    assert retention_row(stack) == (None, 0)
    line = retention_line(client.get(SETTINGS))
    assert f"In force: {stack.settings.retention_days} days (server default), no count limit." in line
    assert post(client, f"{SETTINGS}/retention", {"retention_days": "36500", "max_events": ""}).status_code == 303
    assert retention_row(stack) == (36_500, None)
    assert post(client, f"{SETTINGS}/retention", {}).status_code == 303  # both empty: the server's again
    assert retention_row(stack) == (None, None)


def test_invalid_retention_answers_400_with_the_reason_next_to_each_field(stack: Stack) -> None:
    client = admin(stack)
    assert post(client, f"{SETTINGS}/retention", {"retention_days": "30", "max_events": "500"}).status_code == 303
    before = snapshot(stack)
    days = (
        "Days kept must be a whole number from 1 to 36,500, or empty for the server default "
        f"({stack.settings.retention_days:,})."
    )
    events = (
        "Events kept must be a whole number from 0 (no limit) to 1,000,000,000, or empty for the server default "
        f"({stack.settings.retention_max_events:,})."
    )
    bad_days = ("0", "-1", "36501", "1.5", "abc", "1e3", "1,000", "٣", "99999999999999999999")
    bad_events = ("-1", "1000000001", "10k", "1,000", "0x10", "²")
    cases = [({"retention_days": v, "max_events": "10"}, {"retention_days": days}) for v in bad_days]
    cases += [({"retention_days": "10", "max_events": v}, {"max_events": events}) for v in bad_events]
    cases.append(({"retention_days": "0", "max_events": "-5"}, {"retention_days": days, "max_events": events}))
    for data, expected in cases:
        answer = post(client, f"{SETTINGS}/retention", data)
        assert answer.status_code == 400, (data, answer.text)
        assert field_errors(answer) == expected, data
        assert error_text(answer) == " ".join(expected.values())  # and all of them on top, as other forms do
        for name in ("retention_days", "max_events"):
            marked = f'aria-invalid="true" aria-describedby="{name}-error"' in answer.text
            assert marked == (name in expected), (name, data)
        for name, value in data.items():  # the form comes back as it was sent
            assert field_value(answer, name) == value, (name, answer.text)
        assert "<h2>Retention</h2>" in answer.text
        assert "In force: 30 days, at most 500 events." in retention_line(answer)  # what is stored, not typed
    assert snapshot(stack) == before
    assert retention_row(stack) == (30, 500)
    other = post(client, f"{SETTINGS}/keys", {"label": ""})  # another form's refusal marks no retention field
    assert other.status_code == 400 and field_errors(other) == {}
    assert field_value(other, "retention_days") == "30"


def test_a_member_sees_the_retention_but_cannot_change_it(stack: Stack) -> None:
    add_user(stack, "admin@example.com", admin=True)
    client = member(stack)
    page = client.get(SETTINGS)
    assert "<h2>Retention</h2>" in page.text
    assert retention_line(page).startswith("Stored now: 0 events, 0 bytes. In force: ")
    assert 'name="retention_days"' not in page.text and f'action="{SETTINGS}/retention"' not in page.text
    refused = post(client, f"{SETTINGS}/retention", {"retention_days": "1", "max_events": "1"})
    assert refused.status_code == 403 and "Only administrators" in refused.text
    assert retention_row(stack) == (None, None)


def test_channels_and_rules_are_created_toggled_and_deleted(stack: Stack) -> None:
    client = admin(stack)
    hook = {"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/path-secret", "secret": "s" * 20}
    assert post(client, f"{SETTINGS}/channels", {**hook, "hourly_cap": "7"}).status_code == 303
    mail = {"name": "mail", "kind": "email", "to": "a@example.com, b@example.com", "admins": "1"}
    assert post(client, f"{SETTINGS}/channels", mail).status_code == 303
    ids = channel_ids(stack)
    page = client.get(SETTINGS).text
    assert "http://127.0.0.1:9/…" in page and "path-secret" not in page and "s" * 20 not in page
    assert "a@example.com, b@example.com" in page
    with stack.services.engine.connect() as connection:
        shown = {c["name"]: c for c in manage.list_channels(connection, 1)}
    assert shown["hook"]["hourly_cap"] == 7 and shown["mail"]["config"] == {
        "to": ["a@example.com", "b@example.com"],
        "admins": True,
    }

    rule = {
        "name": "Busy",
        "trigger": "event_frequency",
        "threshold": "5",
        "window_minutes": "10",
        "filter_environment": "production",
        "filter_component": "",
        "filter_level": "error",
        "cooldown_minutes": "15",
        "enabled": "1",
    }
    created = post(client, f"{SETTINGS}/rules", {**rule, "channel": [str(ids["hook"]), str(ids["mail"])]})
    assert created.status_code == 303, created.text
    busy = rules(stack)["Busy"]
    assert busy["trigger"] == "event_frequency" and busy["threshold"] == 5 and busy["window_minutes"] == 10
    assert busy["filters"] == {"environment": "production", "level": "error"}
    assert busy["channels"] == sorted([ids["hook"], ids["mail"]]) and busy["cooldown_minutes"] == 15
    assert busy["enabled"] is True
    page = client.get(SETTINGS).text
    assert "more than 5 in 10 min" in page and "hook, mail" in page

    assert post(client, f"{SETTINGS}/rules/{busy['id']}/enabled", {"enabled": "0"}).status_code == 303
    assert rules(stack)["Busy"]["enabled"] is False
    assert post(client, f"{SETTINGS}/rules/{busy['id']}/enabled", {"enabled": "1"}).status_code == 303
    assert rules(stack)["Busy"]["enabled"] is True
    assert post(client, f"{SETTINGS}/rules/{busy['id']}/delete").status_code == 303
    assert "Busy" not in rules(stack)
    assert post(client, f"{SETTINGS}/channels/{ids['mail']}/delete").status_code == 303
    assert set(channel_ids(stack)) == {"Administrators", "hook"}
    assert post(client, f"{SETTINGS}/rules/{busy['id']}/delete").status_code == 404


def test_a_rule_is_changed_from_its_page_keeping_the_filters_the_page_does_not_show(stack: Stack) -> None:
    client = admin(stack)
    hook = {"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/x", "secret": "s" * 20}
    assert post(client, f"{SETTINGS}/channels", hook).status_code == 303
    ids = channel_ids(stack)
    new_issue = rules(stack)["New issue"]
    with stack.services.engine.begin() as connection:  # a filter only the REST API and the CLI set
        manage.update_rule(connection, 1, new_issue["id"], {"filters": {"release": "2.0", "environment": "staging"}})
    page = client.get(f"{SETTINGS}/rules/{new_issue['id']}")
    assert page.status_code == 200
    assert 'value="New issue"' in page.text and 'value="staging"' in page.text
    assert "<code>release=2.0</code>" in page.text  # shown as kept as it is
    assert f'value="{ids["Administrators"]}" checked' in page.text and f'value="{ids["hook"]}" checked' not in page.text
    assert f'href="{SETTINGS}/rules/{new_issue["id"]}"' in client.get(SETTINGS).text  # the Edit link

    changed = {
        "name": "Bursts",
        "trigger": "event_frequency",
        "threshold": "50",
        "window_minutes": "5",
        "filter_environment": "production",
        "filter_level": "error",
        "cooldown_minutes": "60",
        "channel": [str(ids["hook"])],
    }  # "enabled" not ticked
    answer = post(client, f"{SETTINGS}/rules/{new_issue['id']}", changed)
    assert answer.status_code == 303 and answer.headers["location"] == f"{SETTINGS}#rules"
    rule = rules(stack)["Bursts"]
    assert rule["id"] == new_issue["id"] and "New issue" not in rules(stack)
    assert (rule["trigger"], rule["threshold"], rule["window_minutes"]) == ("event_frequency", 50, 5)
    assert rule["filters"] == {"release": "2.0", "environment": "production", "level": "error"}
    assert rule["channels"] == [ids["hook"]] and rule["cooldown_minutes"] == 60 and rule["enabled"] is False

    before = snapshot(stack)
    refused = post(client, f"{SETTINGS}/rules/{rule['id']}", {**changed, "threshold": "lots"})
    assert refused.status_code == 400 and "needs threshold" in error_text(refused)
    assert 'value="lots"' in refused.text and 'value="Bursts"' in refused.text  # the form as it was sent
    assert snapshot(stack) == before
    assert client.get(f"{SETTINGS}/rules/999999").status_code == 404
    assert post(client, f"{SETTINGS}/rules/999999", changed).status_code == 404
    node_rule = rules(stack, 2)["New issue"]["id"]  # another project's rule, by its id
    assert client.get(f"{SETTINGS}/rules/{node_rule}").status_code == 404
    assert post(client, f"{SETTINGS}/rules/{node_rule}", changed).status_code == 404
    assert snapshot(stack) == before
    assert member(stack).get(f"{SETTINGS}/rules/{rule['id']}").status_code == 403


def test_a_refused_form_comes_back_as_it_was_sent(stack: Stack) -> None:
    client = admin(stack)
    refused = post(client, f"{SETTINGS}/keys", {"label": "Deploy bot", "rate_limit": "lots"})
    assert refused.status_code == 400
    assert 'value="Deploy bot"' in refused.text and 'value="lots"' in refused.text
    hook = {"name": "pager", "kind": "webhook", "url": "ftp://example.com/x", "secret": "z" * 20, "hourly_cap": "9"}
    refused = post(client, f"{SETTINGS}/channels", hook)
    assert refused.status_code == 400
    assert 'value="pager"' in refused.text
    assert "example.com/x" not in refused.text and "z" * 20 not in refused.text  # URLs and secrets: typed again
    assert '<option value="webhook" selected>' in refused.text and 'value="9"' in refused.text
    assert 'value="pager"' not in client.get(SETTINGS).text  # only the refused answer carries them
    rule = {"name": "Often", "trigger": "event_frequency", "threshold": "7", "window_minutes": "0"}
    refused = post(client, f"{SETTINGS}/rules", {**rule, "channel": str(channel_ids(stack)["Administrators"])})
    assert refused.status_code == 400
    assert 'value="Often"' in refused.text and 'value="7"' in refused.text
    assert '<option value="event_frequency" selected>' in refused.text
    refused = post(client, f"{SETTINGS}/members", {"email": "nobody@example.com"})
    assert refused.status_code == 400 and 'value="nobody@example.com"' in refused.text


def test_invalid_alert_forms_answer_400_with_the_validators_message(stack: Stack) -> None:
    client = admin(stack)
    admins = channel_ids(stack)["Administrators"]
    node_channel = channel_ids(stack, 2)["Administrators"]
    before = snapshot(stack)
    rule = {"name": "r", "trigger": "new_issue", "channel": str(admins)}
    frequent = {"trigger": "event_frequency", "window_minutes": "5"}
    cases = [
        (f"{SETTINGS}/channels", {"name": "h", "kind": "webhook", "url": "ftp://example.com/x"}, "url: expected an"),
        (f"{SETTINGS}/channels", {"name": "h", "kind": "webhook", "url": ""}, "url: required"),
        (f"{SETTINGS}/channels", {"name": "h", "kind": "pager", "url": "https://x.example"}, "unknown channel kind"),
        (f"{SETTINGS}/channels", {"name": "", "kind": "slack", "url": "https://x.example"}, "name must be 1 to 200"),
        (f"{SETTINGS}/channels", {"name": "m", "kind": "email", "to": "not-an-address"}, "not-an-address"),
        (
            f"{SETTINGS}/channels",
            {"name": "h", "kind": "slack", "url": "https://x.example", "hourly_cap": "0"},
            "hourly_cap",
        ),
        (
            f"{SETTINGS}/channels",
            {"name": "h", "kind": "slack", "url": "https://x.example", "hourly_cap": "x"},
            "hourly cap",
        ),
        (f"{SETTINGS}/rules", {**rule, "trigger": "sometimes"}, "trigger must be one of"),
        (f"{SETTINGS}/rules", {**rule, "name": ""}, "a rule needs a name"),
        (
            f"{SETTINGS}/rules",
            {**rule, "trigger": "event_frequency", "threshold": "abc", "window_minutes": "5"},
            "needs threshold",
        ),
        (
            f"{SETTINGS}/rules",
            {**rule, "trigger": "impact", "threshold": "1", "window_minutes": "5", "impact_kind": "cats"},
            "impact_kind",
        ),
        (f"{SETTINGS}/rules", {**rule, "cooldown_minutes": "-5"}, "cooldown_minutes"),
        (f"{SETTINGS}/rules", {**rule, **frequent, "threshold": "9" * 30}, "needs threshold"),
        (f"{SETTINGS}/rules", {**rule, "channel": ""}, "a rule needs channels"),
        (f"{SETTINGS}/rules", {**rule, "channel": str(node_channel)}, f"no channel {node_channel} in this project"),
    ]
    for path, data, message in cases:
        answer = post(client, path, data)
        assert answer.status_code == 400, (data, answer.text)
        assert message in error_text(answer), (data, error_text(answer))
    assert snapshot(stack) == before


def test_private_targets_are_refused_when_the_settings_say_so(stack: Stack) -> None:
    client = admin(stack)
    web = stack.app.state.web
    web.settings = dataclasses.replace(web.settings, alerts_allow_private_targets=False)
    before = snapshot(stack)
    answer = post(client, f"{SETTINGS}/channels", {"name": "h", "kind": "slack", "url": "http://127.0.0.1:9/x"})
    assert answer.status_code == 400 and "127.0.0.1" in error_text(answer)
    assert snapshot(stack) == before


def test_a_channel_test_shows_sent_or_the_error(stack: Stack) -> None:
    client = admin(stack)
    with RecordingServer() as receiver:
        hook = {"name": "hook", "kind": "webhook", "url": f"{receiver.url}/hook", "secret": "s" * 20}
        assert post(client, f"{SETTINGS}/channels", hook).status_code == 303
        channel = channel_ids(stack)["hook"]
        sent = post(client, f"{SETTINGS}/channels/{channel}/test")
        assert sent.status_code == 200
        assert "Test notification sent to hook." in sent.text and 'class="error"' not in sent.text
        (request,) = receiver.wait_for(1)
        assert request.path == "/hook" and request.json()["notification"]["reason"] == "Test notification"

        receiver.default = Answer(500, b"database is down")
        failed = post(client, f"{SETTINGS}/channels/{channel}/test")
        assert failed.status_code == 200
        assert "The test notification to hook failed" in error_text(failed) and "HTTP 500" in error_text(failed)
        assert len(receiver.requests) == 2
    with stack.services.engine.connect() as connection:
        shown = next(c for c in manage.list_channels(connection, 1) if c["id"] == channel)
    assert shown["consecutive_failures"] == 1 and "HTTP 500" in shown["last_error"]
    assert "Last error" in client.get(SETTINGS).text


def test_without_smtp_the_administrators_channel_shows_needs_smtp_and_a_test_counts_no_failure(stack: Stack) -> None:
    client = admin(stack)
    page = client.get(SETTINGS).text
    assert '<span class="waiting">needs SMTP</span>' in page and "STACKWATCH_SMTP_HOST" in page
    assert "unhealthy" not in page
    channel = channel_ids(stack)["Administrators"]
    tried = post(client, f"{SETTINGS}/channels/{channel}/test")
    assert tried.status_code == 200 and "needs SMTP" in error_text(tried)
    with stack.services.engine.connect() as connection:
        shown = next(c for c in manage.list_channels(connection, 1, stack.settings) if c["id"] == channel)
    assert shown["status"] == "needs_smtp" and shown["consecutive_failures"] == 0 and shown["last_error"] is None

    with_smtp = dataclasses.replace(stack.settings, smtp_host="127.0.0.1")
    with stack.services.engine.connect() as connection:
        shown = next(c for c in manage.list_channels(connection, 1, with_smtp) if c["id"] == channel)
    assert shown["status"] == "healthy" and shown["waiting"] is None


def test_a_post_without_the_csrf_token_is_refused(stack: Stack) -> None:
    client = admin(stack)
    before = snapshot(stack)
    for path, data in [*every_post(stack), (TOKENS, {"name": "x"}), (f"{TOKENS}/1/revoke", {})]:
        assert post(client, path, data, csrf=False).status_code == 403, path
        forged = client.post(path, data={**data, "csrf_token": "x" * 43}, follow_redirects=False)
        assert forged.status_code == 403, path
    assert snapshot(stack) == before


def test_a_token_is_shown_once_works_and_stops_when_revoked(stack: Stack) -> None:
    client = admin(stack)
    created = post(client, TOKENS, {"name": "deploy"})
    assert created.status_code == 200 and "location" not in created.headers
    match = re.search(r'value="(swt_[^"]+)"', created.text)
    assert match, created.text
    token = match.group(1)
    assert "it will not be shown again" in created.text
    assert token not in str(created.url)

    api = stack.client.get("/api/v1/projects", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 200 and {p["slug"] for p in api.json()} == {"python", "node"}
    listed = client.get(TOKENS).text
    assert token not in listed and "deploy" in listed and f"{token[:12]}…" in listed
    assert "never" not in listed.split("deploy", 1)[1].split("</tr>", 1)[0]  # last used is recorded

    with stack.services.engine.connect() as connection:
        token_id = connection.execute(select(api_tokens.c.id).where(api_tokens.c.name == "deploy")).scalar_one()
    assert post(client, f"{TOKENS}/{token_id}/revoke").status_code == 303
    api = stack.client.get("/api/v1/projects", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 401
    assert "Revoke</button>" not in client.get(TOKENS).text


def test_a_user_sees_and_revokes_only_their_own_tokens(stack: Stack) -> None:
    client = admin(stack)
    add_user(stack, "other@example.com", admin=True)
    other = TestClient(stack.app)
    login(other, "other@example.com")
    assert post(other, TOKENS, {"name": "theirs"}).status_code == 200
    with stack.services.engine.connect() as connection:
        theirs = connection.execute(select(api_tokens.c.id).where(api_tokens.c.name == "theirs")).scalar_one()
    assert "theirs" not in client.get(TOKENS).text
    assert "tests" not in client.get(TOKENS).text  # the fixture's token, made without a user
    before = snapshot(stack)
    for token_id in (str(theirs), "1", "999", "abc"):
        assert post(client, f"{TOKENS}/{token_id}/revoke").status_code == 404, token_id
    assert snapshot(stack) == before


def test_only_administrators_create_tokens(stack: Stack) -> None:
    client = member(stack)
    page = client.get(TOKENS)
    assert page.status_code == 200 and 'action="/account/tokens"' not in page.text
    assert "Only administrators can create API tokens" in page.text
    before = snapshot(stack)
    assert post(client, TOKENS, {"name": "mine"}).status_code == 403
    assert snapshot(stack) == before


def test_invalid_token_names_answer_400(stack: Stack) -> None:
    client = admin(stack)
    before = snapshot(stack)
    for name in ("", "  ", "x" * 201):
        answer = post(client, TOKENS, {"name": name})
        assert answer.status_code == 400 and "name must be 1 to 200 characters" in error_text(answer)
        assert "swt_" not in answer.text
    assert snapshot(stack) == before


def test_script_payloads_are_escaped(stack: Stack) -> None:
    client = admin(stack)
    assert post(client, f"{SETTINGS}/keys", {"label": SCRIPT}).status_code == 303
    slack = {"name": SCRIPT, "kind": "slack", "url": "https://hooks.slack.com/services/T/B/x"}
    assert post(client, f"{SETTINGS}/channels", slack).status_code == 303
    channel = channel_ids(stack)[SCRIPT]
    assert (
        post(client, f"{SETTINGS}/rules", {"name": SCRIPT, "trigger": "new_issue", "channel": str(channel)}).status_code
        == 303
    )
    created = post(client, TOKENS, {"name": SCRIPT})
    escaped = html.escape(SCRIPT, quote=False)
    for page in (client.get(SETTINGS), created, client.get(TOKENS)):
        assert SCRIPT not in page.text
        assert escaped in page.text
    assert client.get(SETTINGS).text.count(escaped) >= 4  # key label, channel, rule, rule's channel list
    bad = post(client, f"{SETTINGS}/members", {"email": SCRIPT})
    assert bad.status_code == 400 and SCRIPT not in bad.text


def test_grouping_is_saved_and_a_rule_that_does_not_parse_is_refused_next_to_its_field(stack: Stack) -> None:
    client = admin(stack)
    with stack.services.engine.begin() as connection:
        connection.execute(update(projects).values(grouping_version=1, grouping_previous=None))
    saved = post(
        client,
        f"{SETTINGS}/grouping",
        {
            "grouping_version": "2",
            "stacktrace_rules": "path:**/vendor/** -app",
            "fingerprint_rules": "error.type:DatabaseUnavailable -> database-down",
        },
    )
    assert saved.status_code == 303, saved.text
    page = client.get(SETTINGS).text
    assert "path:**/vendor/** -app" in page and "error.type:DatabaseUnavailable -&gt; database-down" in page
    assert "Moving from version 1 until" in page
    before = snapshot(stack)
    refused = post(
        client,
        f"{SETTINGS}/grouping",
        {
            "grouping_version": "2",
            "stacktrace_rules": "path:**/vendor/** -app\nfunction:x +sideways",
            "fingerprint_rules": "",
        },
    )
    assert refused.status_code == 400
    assert 'id="stacktrace_rules-error"' in refused.text and "line 2" in refused.text
    assert "function:x +sideways" in refused.text  # the form comes back as it was sent
    for version in ("7", "", "two"):
        answer = post(client, f"{SETTINGS}/grouping", {"grouping_version": version})
        assert answer.status_code == 400 and "Choose a grouping version" in answer.text
    assert snapshot(stack) == before


def test_a_member_reads_the_grouping_rules(stack: Stack) -> None:
    add_user(stack, "admin@example.com", admin=True)
    with stack.services.engine.begin() as connection:
        connection.execute(update(projects).values(stacktrace_rules="function:std::* -group"))
    page = member(stack).get(SETTINGS).text
    assert '<pre class="rules stacktrace_rules">function:std::* -group</pre>' in page
