"""Secrets that real SDKs sent never reach storage or the API: the server scrubs every event it digests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select, update

from stackwatch.server.storage import db
from stackwatch.server.storage.schema import inbox, projects
from tests import support
from tests.captures import NODE_DIR, PYTHON_DIR, load, replay_all
from tests.conftest import Stack

# Planted by the fixture generators (tests/fixtures/sdk-envelopes/*/GENERATOR.*): in frame variables, in an
# Authorization header held in a local dict, in a URL query string inside the exception value, in source lines.
PLANTED = ("sk_live_51HxYzSECRETTOKEN", "SECRETTOKEN", "key_ABCDEF", "hunter2", "abcdef123456", "whsec_ABCDEF123")
# What the same events carry that is not secret, and must survive (so the test fails if everything is dropped).
KEPT = ("wf_orders", "run_1", "wf_signup", "ConnectionError", "api.example.com", "step_http_call", "call-crm")


def stored_bytes(stack: Stack) -> bytes:
    return support.stored_bytes(stack.services.engine)


def api_bytes(stack: Stack) -> bytes:
    return support.crawl_api(stack.api)


def assert_clean(blob: bytes, where: str) -> None:
    leaked = [secret for secret in PLANTED if secret.encode() in blob]
    assert leaked == [], f"{where} holds planted secrets: {leaked}"


@pytest.fixture
def replayed(stack: Stack) -> Stack:
    replay_all(stack)
    return stack


def test_the_fixtures_carry_the_planted_secrets() -> None:
    """The control: the raw requests really contain every planted secret, so the tests below can fail."""
    from stackwatch.server.ingest.decode import decode_body

    raw = b"".join(
        decode_body(c.body, c.headers.get("Content-Encoding") or c.headers.get("content-encoding"), 50 << 20)
        for directory in (PYTHON_DIR, NODE_DIR)
        for c in load(directory)
    )
    assert [s for s in PLANTED if s.encode() not in raw] == []


def test_no_planted_secret_is_stored(replayed: Stack) -> None:
    blob = stored_bytes(replayed)
    assert_clean(blob, "the database")
    for kept in KEPT:
        assert kept.encode() in blob, kept


def test_no_planted_secret_is_served_by_the_api(replayed: Stack) -> None:
    blob = api_bytes(replayed)
    assert_clean(blob, "the REST API")
    for kept in KEPT:
        assert kept.encode() in blob, kept


def test_removals_are_recorded_in_meta(replayed: Stack) -> None:
    event = replayed.api("/events/7def14da5943488b922ba1b8d703ccb7").json()["data"]
    meta = orjson.dumps(event["_meta"]).decode()
    value = event["exception"]["values"][0]["value"]
    assert "[Filtered:" in value and "token=" in value  # the parameter name stays, its value goes
    assert "query_secret" in meta or "url" in meta, meta
    frames = event["exception"]["values"][0]["stacktrace"]["frames"]
    variables = next(f["vars"] for f in frames if f.get("function") == "step_http_call")
    assert variables["password"] == "[Filtered]"
    assert "[Filtered" in orjson.dumps(variables["headers"]).decode()


def test_the_title_is_scrubbed_too(replayed: Stack) -> None:
    titles = [issue["title"] for issue in replayed.api("/projects/python/issues", limit=100).json()["data"]]
    connection_error = next(t for t in titles if t.startswith("ConnectionError"))
    assert "abcdef123456" not in connection_error
    assert "[Filtered:" in connection_error


def set_project(stack: Stack, slug: str, **values: bool) -> None:
    with stack.services.engine.begin() as connection:
        connection.execute(update(projects).where(projects.c.slug == slug).values(**values))


def test_emails_and_ips_are_kept_unless_the_project_asks(stack: Stack) -> None:
    event = support.exception_event(value="mail alice@example.com from 198.51.100.23")
    event["user"] = {"email": "alice@example.com", "ip_address": "198.51.100.23"}
    support.send_ok(stack, event)
    stack.digest()
    detail = stack.api(f"/events/{event['event_id']}").json()["data"]
    assert detail["user"] == {"email": "alice@example.com", "ip_address": "198.51.100.23"}
    assert "alice@example.com" in detail["exception"]["values"][0]["value"]


def test_a_project_can_scrub_emails_and_ips(stack: Stack) -> None:
    set_project(stack, "python", scrub_emails=True, scrub_ips=True)
    first = support.exception_event(value="mail alice@example.com from 198.51.100.23")
    first["user"] = {"email": "alice@example.com", "ip_address": "{{auto}}"}
    second = support.exception_event(value="mail bob@example.com from 198.51.100.24")
    second["user"] = {"email": "bob@example.com"}
    for event in (first, second):
        support.send_ok(stack, event)
    stack.digest()
    blob = stored_bytes(stack) + api_bytes(stack)
    for secret in (b"alice@example.com", b"bob@example.com", b"198.51.100.23"):
        assert secret not in blob
    detail = stack.api(f"/events/{first['event_id']}").json()["data"]
    assert detail["user"]["email"] == "[Filtered:email]"
    # Redacted identities still count as two distinct users, through a keyed hash.
    issue = stack.api(f"/issues/{support.issue_of(stack, first['event_id'])}").json()
    assert issue["user_count"] == 2


def test_text_attachments_are_scrubbed(stack: Stack) -> None:
    event = support.exception_event()
    log_text = b"GET https://api.example.com/x?token=abcdef123456 Authorization: Bearer sk_live_51HxYzSECRETTOKEN\n"
    body = support.envelope(
        ({"type": "event"}, orjson.dumps(event)),
        ({"type": "attachment", "filename": "run.log", "content_type": "text/plain"}, log_text),
        ({"type": "attachment", "filename": "blob.bin"}, b"\x00\x01token=abcdef123456\xff"),
        header={"event_id": event["event_id"]},
    )
    response = stack.client.post("/api/1/envelope/", content=body, headers={"X-Sentry-Auth": support.AUTH})
    assert response.status_code == 200
    stack.digest()
    blob = stored_bytes(stack)
    assert b"sk_live_51HxYzSECRETTOKEN" not in blob
    assert b"run.log" in blob
    # Binary attachments are stored as sent: they are not text, and redaction cannot know their format.
    assert b"\x00\x01token=abcdef123456\xff" in blob


def test_the_inbox_keeps_no_digested_secret(replayed: Stack) -> None:
    path = db.inbox_path(replayed.settings.database_url)
    if path is None:  # PostgreSQL: the inbox is a table, its rows deleted in the digest's transaction
        with replayed.services.engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(inbox)).scalar_one() == 0
        return
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    files = [Path(str(path) + suffix) for suffix in ("", "-wal")]
    blob = b"".join(f.read_bytes() for f in files if f.exists())
    assert_clean(blob, "the inbox file")
