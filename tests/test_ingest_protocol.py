"""The Sentry ingest protocol, in process: authentication, encodings, endpoints, limits and normalization."""

from __future__ import annotations

import base64
import gzip
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import brotli
import orjson
import pytest
import zstandard
from sqlalchemy import update
from starlette.testclient import TestClient

from stackwatch.server.app import create_app
from stackwatch.server.config import load_settings
from stackwatch.server.ingest.limits import NEVER_KEPT_HEADER
from stackwatch.server.storage.schema import events, project_keys, projects
from tests import support
from tests.conftest import NODE_KEY, PYTHON_KEY, Stack
from tests.support import AUTH, envelope, event_envelope, exception_event, message_event

DSN = f"http://{PYTHON_KEY}@testserver/1"


def post(stack: Stack, body: bytes, headers: dict[str, str] | None = None, path: str = "/api/1/envelope/"):
    return stack.client.post(path, content=body, headers=headers or {})


def stored(stack: Stack, event_id: str) -> dict[str, Any]:
    response = stack.api(f"/events/{event_id}")
    assert response.status_code == 200, response.text
    return response.json()


def assert_error(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers.get("x-sentry-error")
    assert response.headers["access-control-allow-origin"] == "*"


def inbox_bodies(stack: Stack) -> list[bytes]:
    """The envelopes waiting in the inbox, read in a transaction that is rolled back."""
    with stack.services.engine.connect() as connection:
        transaction = connection.begin()
        try:
            return [row.body for row in stack.services.inbox.take(connection, 1000)]
        finally:
            transaction.rollback()


# --- authentication ----------------------------------------------------------------------------------------


AUTH_FORMS: list[tuple[str, str, dict[str, str], dict[str, Any]]] = [
    ("x-sentry-auth", "/api/1/envelope/", {"X-Sentry-Auth": AUTH}, {}),
    (
        "x-sentry-auth, lower case",
        "/api/1/envelope/",
        {"x-sentry-auth": f"Sentry sentry_version=7,sentry_key={PYTHON_KEY}"},
        {},
    ),
    ("authorization", "/api/1/envelope/", {"Authorization": f"Sentry sentry_key={PYTHON_KEY}, sentry_version=7"}, {}),
    ("authorization, quoted", "/api/1/envelope/", {"Authorization": f'Sentry sentry_key="{PYTHON_KEY}"'}, {}),
    ("query", f"/api/1/envelope/?sentry_version=7&sentry_key={PYTHON_KEY}", {}, {}),
    ("envelope dsn", "/api/1/envelope/", {}, {"dsn": DSN}),
]


def test_every_auth_form_is_accepted(stack: Stack) -> None:
    sent = []
    for name, path, headers, header in AUTH_FORMS:
        event = exception_event()
        response = post(stack, event_envelope(event, {"event_id": event["event_id"], **header}), headers, path)
        assert response.status_code == 200, (name, response.text)
        assert response.json() == {"id": event["event_id"]}, name
        sent.append(event["event_id"])
    assert stack.digest() == len(AUTH_FORMS)
    for event_id in sent:
        assert stored(stack, event_id)["project_id"] == 1


def test_bad_keys_are_refused(stack: Stack) -> None:
    body = event_envelope(exception_event())
    # No key anywhere, or an unknown one: 401.
    assert_error(post(stack, body), 401)
    assert_error(post(stack, body, {"X-Sentry-Auth": "Sentry sentry_key=nope"}), 401)
    assert_error(post(stack, event_envelope(exception_event(), {"dsn": "http://nope@testserver/1"})), 401)
    # A key of another project: 403.
    assert_error(post(stack, body, {"X-Sentry-Auth": f"Sentry sentry_key={NODE_KEY}"}), 403)
    assert_error(post(stack, event_envelope(exception_event(), {"dsn": f"http://{NODE_KEY}@testserver/2"})), 403)
    # A project id that is not a number: 400.
    assert_error(post(stack, body, {"X-Sentry-Auth": AUTH}, "/api/abc/envelope/"), 400)
    assert stack.services.inbox.backlog() == 0


def test_revoked_key_is_403(stack: Stack) -> None:
    with stack.services.engine.begin() as connection:
        connection.execute(update(project_keys).where(project_keys.c.public_key == NODE_KEY).values(active=False))
    auth = {"X-Sentry-Auth": f"Sentry sentry_key={NODE_KEY}"}
    assert_error(post(stack, event_envelope(exception_event()), auth, "/api/2/envelope/"), 403)


# --- body encodings ----------------------------------------------------------------------------------------


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


ENCODERS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "deflate-raw": _raw_deflate,
    "br": brotli.compress,
    "zstd": zstandard.ZstdCompressor().compress,
    "identity": lambda data: data,
    "": lambda data: data,
}


def test_every_content_encoding(stack: Stack) -> None:
    sent = []
    for name, encode in ENCODERS.items():
        event = exception_event()
        headers = {"X-Sentry-Auth": AUTH}
        encoding = name.split("-")[0]
        if encoding:
            headers["Content-Encoding"] = encoding
        response = post(stack, encode(event_envelope(event)), headers)
        assert response.status_code == 200, (name, response.text)
        sent.append(event["event_id"])
    assert stack.digest() == len(ENCODERS)
    for event_id in sent:
        assert stored(stack, event_id)["title"] == "ValueError: bad value"


def test_chunked_bodies_and_any_content_type(stack: Stack) -> None:
    event = exception_event()
    body = event_envelope(event)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 100):
            yield body[start : start + 100]

    response = stack.client.post(f"/api/1/envelope/?sentry_key={PYTHON_KEY}", content=chunks())
    assert response.status_code == 200, response.text
    for content_type in ("application/x-sentry-envelope", "text/plain;charset=UTF-8", "x/y"):
        headers = {"X-Sentry-Auth": AUTH, "Content-Type": content_type}
        response = post(stack, event_envelope(exception_event()), headers)
        assert response.status_code == 200, (content_type, response.text)
    assert stack.digest() == 4


def test_corrupt_and_unknown_encodings_are_400(stack: Stack) -> None:
    body = event_envelope(exception_event())
    for encoding, data in (("gzip", body), ("br", body), ("zstd", body), ("compress", body)):
        assert_error(post(stack, data, {"X-Sentry-Auth": AUTH, "Content-Encoding": encoding}), 400)
    truncated = gzip.compress(body)[:-20]
    assert_error(post(stack, truncated, {"X-Sentry-Auth": AUTH, "Content-Encoding": "gzip"}), 400)


def test_decompression_bomb_is_413(stack: Stack) -> None:
    bomb = gzip.compress(b"\n" * (stack.settings.max_envelope_bytes + 1024))
    assert len(bomb) < stack.settings.max_envelope_bytes
    assert_error(post(stack, bomb, {"X-Sentry-Auth": AUTH, "Content-Encoding": "gzip"}), 413)


def test_oversized_event_item_is_413(stack: Stack) -> None:
    event = message_event("x" * (stack.settings.max_event_bytes + 10))
    assert_error(post(stack, event_envelope(event), {"X-Sentry-Auth": AUTH}), 413)


def test_malformed_envelopes_are_400_never_500(stack: Stack) -> None:
    headers = {"X-Sentry-Auth": AUTH}
    for body in (
        b"",
        b"not json\n",
        b"[1,2]\n",
        b'{}\n{"type":"event","length":100}\n{}',
        b'{}\n{"type":"event"}\n[1]',
        b'{}\n{"type":"event"}\nnot json',
        b'{}\n{"length":2}\n{}',
        b'{}\n{"type":"event","length":-1}\n{}',
        b'{}\n{"type":"session"}\n"string"',
    ):
        assert_error(post(stack, body, headers), 400)


# --- the legacy store endpoint -----------------------------------------------------------------------------


def test_store_with_plain_json(stack: Stack) -> None:
    event = exception_event()
    response = post(stack, orjson.dumps(event), {"X-Sentry-Auth": AUTH}, "/api/1/store/")
    assert response.status_code == 200, response.text
    assert response.json() == {"id": event["event_id"]}
    assert stack.digest() == 1
    assert stored(stack, event["event_id"])["title"] == "ValueError: bad value"


def test_store_with_base64_zlib_json(stack: Stack) -> None:
    event = exception_event()
    body = base64.b64encode(zlib.compress(orjson.dumps(event)))
    response = post(stack, body, {"X-Sentry-Auth": AUTH, "Content-Type": "application/octet-stream"}, "/api/1/store/")
    assert response.status_code == 200, response.text
    assert stack.digest() == 1
    assert stored(stack, event["event_id"])["event_id"] == event["event_id"]


def test_store_rejects_garbage_and_bombs(stack: Stack) -> None:
    assert_error(post(stack, b"%%%", {"X-Sentry-Auth": AUTH}, "/api/1/store/"), 400)
    assert_error(post(stack, b"[1]", {"X-Sentry-Auth": AUTH}, "/api/1/store/"), 400)
    bomb = base64.b64encode(zlib.compress(b" " * (stack.settings.max_envelope_bytes + 1)))
    assert_error(post(stack, bomb, {"X-Sentry-Auth": AUTH}, "/api/1/store/"), 413)


def test_store_transaction_is_accepted_and_dropped(stack: Stack) -> None:
    transaction = {"event_id": support.new_id(), "type": "transaction", "transaction": "GET /", "spans": []}
    response = post(stack, orjson.dumps(transaction), {"X-Sentry-Auth": AUTH}, "/api/1/store/")
    assert response.status_code == 200, response.text
    stack.digest()
    assert support.count(stack, events) == 0


# --- item types and answers --------------------------------------------------------------------------------


def test_unknown_and_dropped_item_types_are_skipped(stack: Stack) -> None:
    event = exception_event()
    body = envelope(
        ({"type": "event"}, orjson.dumps(event)),
        ({"type": "something_new"}, b"\x00\x01 binary"),
        ({"type": "transaction"}, orjson.dumps({"type": "transaction", "spans": []})),
        ({"type": "profile"}, b"{}"),
        header={"event_id": event["event_id"]},
    )
    response = post(stack, body, {"X-Sentry-Auth": AUTH})
    assert response.status_code == 200, response.text
    (kept,) = inbox_bodies(stack)
    assert b"something_new" not in kept
    assert b"transaction" not in kept
    assert stack.digest() == 1


def test_envelope_of_only_unknown_items_is_200_and_not_stored(stack: Stack) -> None:
    body = envelope(({"type": "something_new"}, b"{}"), ({"type": "check_in"}, b"{}"))
    response = post(stack, body, {"X-Sentry-Auth": AUTH})
    assert response.status_code == 200, response.text
    assert response.json() == {"id": None}
    assert inbox_bodies(stack) == []
    assert stack.services.inbox.backlog() == 0


def test_accepted_answer_names_categories_never_kept(stack: Stack) -> None:
    response = post(stack, event_envelope(exception_event()), {"X-Sentry-Auth": AUTH})
    assert response.status_code == 200
    limits = response.headers["x-sentry-rate-limits"]
    assert limits == NEVER_KEPT_HEADER
    seconds, categories, scope = limits.split(":")
    assert int(seconds) > 0
    assert {"transaction", "span", "profile", "replay", "monitor"} <= set(categories.split(";"))
    assert not {"error", "default", "attachment", "session"} & set(categories.split(";"))
    assert scope == "key"
    assert response.headers["access-control-allow-origin"] == "*"


def test_cors_preflight(stack: Stack) -> None:
    for path in ("/api/1/envelope/", "/api/1/store/"):
        response = stack.client.options(
            path,
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, x-sentry-auth",
            },
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "*"
        assert "POST" in response.headers["access-control-allow-methods"]
        assert "x-sentry-auth" in response.headers["access-control-allow-headers"].lower()
        exposed = {h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")}
        assert {"x-sentry-error", "x-sentry-rate-limits", "retry-after"} <= exposed


# --- rate limits -------------------------------------------------------------------------------------------


def _assert_rate_limited(response: Any) -> None:
    assert_error(response, 429)
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit() and int(retry_after) >= 1
    seconds, categories, scope = response.headers["x-sentry-rate-limits"].split(":")
    assert seconds == retry_after
    assert "error" in categories.split(";")
    assert scope == "key"


def test_server_wide_rate_limit(stack: Stack) -> None:
    flags = {
        "data_dir": str(stack.settings.data_dir),
        "database_url": stack.settings.database_url,
        "rate_limit_per_minute": "2",
    }
    settings = load_settings(flags, {"STACKWATCH_SECRET_KEY": "test-secret-key"})
    assert settings.rate_limit_per_minute == 2
    app = create_app(settings, stack.services, run_worker=False)
    with TestClient(app) as client:
        headers = {"X-Sentry-Auth": AUTH}
        answers = [
            client.post("/api/1/envelope/", content=event_envelope(exception_event()), headers=headers)
            for _ in range(3)
        ]
        assert [answer.status_code for answer in answers] == [200, 200, 429]
        _assert_rate_limited(answers[2])
        # Only events count: a session update still goes through.
        session = envelope(({"type": "session"}, orjson.dumps({"sid": "a", "init": True, "status": "ok"})))
        assert client.post("/api/1/envelope/", content=session, headers=headers).status_code == 200
        # Another key has a bucket of its own.
        node = {"X-Sentry-Auth": f"Sentry sentry_key={NODE_KEY}"}
        assert (
            client.post("/api/2/envelope/", content=event_envelope(exception_event()), headers=node).status_code == 200
        )
    assert stack.digest() == 3


def test_per_key_rate_limit(stack: Stack) -> None:
    with stack.services.engine.begin() as connection:
        connection.execute(
            update(project_keys).where(project_keys.c.public_key == NODE_KEY).values(rate_limit_per_minute=1)
        )
    node = {"X-Sentry-Auth": f"Sentry sentry_key={NODE_KEY}"}
    first = post(stack, event_envelope(exception_event()), node, "/api/2/envelope/")
    second = post(stack, event_envelope(exception_event()), node, "/api/2/envelope/")
    assert first.status_code == 200
    _assert_rate_limited(second)
    # The Python key has no limit of its own and the server has none.
    for _ in range(5):
        assert post(stack, event_envelope(exception_event()), {"X-Sentry-Auth": AUTH}).status_code == 200


# --- normalization -----------------------------------------------------------------------------------------


def test_envelope_header_event_id_wins(stack: Stack) -> None:
    event = exception_event()
    header_id = support.new_id()
    response = post(stack, event_envelope(event, {"event_id": header_id}), {"X-Sentry-Auth": AUTH})
    assert response.json() == {"id": header_id}
    stack.digest()
    assert stored(stack, header_id)["data"]["event_id"] == header_id
    assert stack.api(f"/events/{event['event_id']}").status_code == 404


def test_event_id_is_normalized_to_lowercase_hex(stack: Stack) -> None:
    raw = "3F2A1C9E-1234-4ABC-8DEF-0123456789AB"
    event = exception_event(event_id=raw)
    response = post(stack, event_envelope(event, {}), {"X-Sentry-Auth": AUTH})
    expected = raw.replace("-", "").lower()
    assert response.json() == {"id": expected}
    stack.digest()
    assert stored(stack, raw)["event_id"] == expected


def test_missing_event_id_is_made_up(stack: Stack) -> None:
    event = exception_event()
    del event["event_id"]
    response = post(stack, event_envelope(event, {}), {"X-Sentry-Auth": AUTH})
    event_id = response.json()["id"]
    assert len(event_id) == 32 and int(event_id, 16) >= 0
    stack.digest()
    assert stored(stack, event_id)["event_id"] == event_id


def _hour_ago() -> float:
    return float(int(time.time()) - 3600) + 0.25


def test_timestamp_forms(stack: Stack) -> None:
    stamp = _hour_ago()
    moment = datetime.fromtimestamp(stamp, UTC)
    forms: dict[str, Any] = {
        "iso-z": moment.isoformat().replace("+00:00", "Z"),
        "iso-offset": moment.astimezone(timezone(timedelta(hours=2))).isoformat(),
        "iso-naive": moment.replace(tzinfo=None).isoformat(),
        "epoch-float": stamp,
        "epoch-int": int(stamp),
        "epoch-string": str(stamp),
    }
    sent = {form: support.send_ok(stack, exception_event(timestamp=value)) for form, value in forms.items()}
    stack.digest()
    for form, event_id in sent.items():
        data = stored(stack, event_id)
        expected = int(stamp) if form == "epoch-int" else stamp
        assert data["data"]["timestamp"] == pytest.approx(expected), form
        assert data["timestamp"].startswith(moment.strftime("%Y-%m-%dT%H:%M:%S")), form


def test_bad_or_future_timestamp_becomes_the_receive_time(stack: Stack) -> None:
    before = time.time()
    values = ["yesterday", None, -5, True, [], "2999-01-01T00:00:00Z", time.time() + 3600]
    sent = [support.send_ok(stack, exception_event(timestamp=value)) for value in values]
    stack.digest()
    for value, event_id in zip(values, sent, strict=True):
        data = stored(stack, event_id)["data"]
        assert data["timestamp"] == data["received"], value
        assert before - 1 <= data["timestamp"] <= time.time() + 1, value


LEVELS = {
    "fatal": "fatal",
    "critical": "fatal",
    "CRITICAL": "fatal",
    "error": "error",
    "warn": "warning",
    "Warning": "warning",
    "log": "info",
    "info": "info",
    "notice": "info",
    "trace": "debug",
    "debug": "debug",
    "bogus": "error",
    3: "error",
    None: "error",
}


def test_level_aliases(stack: Stack) -> None:
    sent = {level: support.send_ok(stack, message_event("something happened", level=level)) for level in LEVELS}
    stack.digest()
    for level, event_id in sent.items():
        data = stored(stack, event_id)
        assert (data["level"], data["data"]["level"]) == (LEVELS[level], LEVELS[level]), level


def test_auto_ip_address_is_the_client_address(stack: Stack) -> None:
    event = exception_event(user={"id": "u1", "ip_address": "{{auto}}"})
    support.send_ok(stack, event)
    stack.digest()
    user = stored(stack, event["event_id"])["data"]["user"]
    assert user["ip_address"] == "testclient"  # Starlette's TestClient reports this as the client host
    assert user["id"] == "u1"


def test_ip_addresses_are_dropped_when_collection_is_off(stack: Stack) -> None:
    with stack.services.engine.begin() as connection:
        connection.execute(update(projects).where(projects.c.id == 1).values(collect_ips=False))
    auto = exception_event(user={"id": "u1", "ip_address": "{{auto}}"})
    given = exception_event(user={"id": "u2", "ip_address": "203.0.113.9"})
    only_ip = exception_event(user={"ip_address": "{{auto}}"})
    for event in (auto, given, only_ip):
        support.send_ok(stack, event)
    stack.digest()
    assert stored(stack, auto["event_id"])["data"]["user"] == {"id": "u1"}
    assert stored(stack, given["event_id"])["data"]["user"] == {"id": "u2"}
    assert "user" not in stored(stack, only_ip["event_id"])["data"]


def test_logentry_template_is_kept(stack: Stack) -> None:
    event = message_event(
        "", logentry={"message": "run %s failed", "params": ["run_7"], "formatted": "run run_7 failed"}
    )
    support.send_ok(stack, event)
    stack.digest()
    data = stored(stack, event["event_id"])
    assert data["data"]["logentry"] == {
        "message": "run %s failed",
        "params": ["run_7"],
        "formatted": "run run_7 failed",
    }
    assert data["title"] == "run run_7 failed"


def test_wrong_types_do_not_fail_the_event(stack: Stack) -> None:
    event = {
        "event_id": support.new_id(),
        "level": ["x"],
        "tags": [["component", "api"], ["bad"], 7, ["n", 1]],
        "user": "not an object",
        "contexts": [],
        "exception": {"values": [{"type": "E", "stacktrace": {"frames": "nope"}}, "junk"]},
        "fingerprint": "not a list",
        "environment": {"a": 1},
        "release": 12,
    }
    support.send_ok(stack, event)
    assert stack.digest() == 1
    data = stored(stack, event["event_id"])
    assert data["level"] == "error"
    assert data["component"] == "api"
    assert data["release"] == "12"
    assert data["environment"] is None
    assert data["data"]["tags"] == {"component": "api", "n": "1"}
