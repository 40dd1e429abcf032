"""Attachments: quotas per key apart from events (count and bytes, Sentry's ``attachment`` category), caps per
envelope, the list on the event page and in the REST API, and the download for administrators (both backends)."""

from __future__ import annotations

import gzip
import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

import httpx
import orjson
import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from stackwatch.server.app import create_app
from stackwatch.server.config import load_settings
from stackwatch.server.ingest.limits import NEVER_KEPT_HEADER, RateLimiter
from stackwatch.server.storage.schema import attachments, events, project_keys
from tests import support
from tests.conftest import NODE_KEY, Stack
from tests.support import AUTH, envelope, exception_event, foreign_markup, issue_of, message_event, new_id
from tests.test_web_auth import add_user, login
from tests.test_web_settings import SETTINGS, error_text, keys, member, post, snapshot
from tests.test_web_settings import admin as admin_client

SCRIPT_NAME = "<script>alert(1)</script>.html"
NODE_AUTH = f"Sentry sentry_key={NODE_KEY}, sentry_version=7"


@contextmanager
def ingest_with(stack: Stack, **flags: str) -> Iterator[TestClient]:
    """A second application on the stack's database and inbox, with these settings."""
    settings = load_settings(
        {"data_dir": str(stack.settings.data_dir), "database_url": stack.settings.database_url, **flags},
        {"STACKWATCH_SECRET_KEY": "test-secret-key"},
    )
    with TestClient(create_app(settings, stack.services, run_worker=False)) as client:
        yield client


def attachment(
    payload: bytes, filename: str = "run.log", content_type: str = "text/plain"
) -> tuple[dict[str, Any], bytes]:
    return {"type": "attachment", "filename": filename, "content_type": content_type}, payload


def with_event(event: dict[str, Any], *files: tuple[dict[str, Any], bytes]) -> bytes:
    return envelope(({"type": "event"}, orjson.dumps(event)), *files, header={"event_id": event["event_id"]})


def only_attachments(*files: tuple[dict[str, Any], bytes]) -> bytes:
    return envelope(*files, header={"event_id": new_id()})


def send(
    client: TestClient, body: bytes, *, project: int = 1, auth: str = AUTH, gzipped: bool = False
) -> httpx.Response:
    headers = {"X-Sentry-Auth": auth}
    if gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    return client.post(f"/api/{project}/envelope/", content=body, headers=headers)


def dropped(client: TestClient) -> tuple[int, int]:
    """Attachments and attachment bytes dropped over their quota, from /metrics (counted per process)."""
    text = client.get("/metrics").text

    def value(name: str) -> int:
        found = re.search(rf'^{name}{{reason="rate_limited"}} (\d+)$', text, re.M)
        return int(found.group(1)) if found else 0

    return value("stackwatch_ingest_attachments_dropped_total"), value(
        "stackwatch_ingest_attachment_bytes_dropped_total"
    )


def assert_attachments_held_back(response: httpx.Response, status: int) -> int:
    """The answer tells the SDK to hold back attachments, for ``Retry-After`` seconds on a 429; the seconds."""
    assert response.status_code == status, response.text
    first = response.headers["x-sentry-rate-limits"].split(",")[0].strip()
    seconds, categories, scope = first.split(":")
    assert categories == "attachment" and scope == "key" and int(seconds) >= 1
    if status == 429:
        assert response.headers["retry-after"] == seconds
        assert "attachment rate limit" in response.headers["x-sentry-error"]
    return int(seconds)


# --- quotas ------------------------------------------------------------------------------------------------

QUOTAS = [
    # name, settings, one envelope's attachments: the quota allows two such envelopes a minute
    ("count", {"attachment_rate_limit_per_minute": "4", "attachment_bytes_per_minute": "0"}, [b"a" * 10, b"b" * 10]),
    # Bytes are counted decompressed: each envelope is 2,400 bytes of attachments but ~60 bytes on the wire.
    ("bytes", {"attachment_rate_limit_per_minute": "0", "attachment_bytes_per_minute": "5000"}, [b"\0" * 1200] * 2),
]


@pytest.mark.parametrize(("name", "flags", "payloads"), QUOTAS, ids=[case[0] for case in QUOTAS])
def test_attachment_only_envelopes_are_limited(
    stack: Stack, name: str, flags: dict[str, str], payloads: list[bytes]
) -> None:
    with ingest_with(stack, **flags) as client:
        before = dropped(client)
        body = lambda: only_attachments(*(attachment(p, f"f{i}.log") for i, p in enumerate(payloads)))  # noqa: E731 - a new event id each time
        answers = [send(client, body(), gzipped=True) for _ in range(3)]
        assert [answer.status_code for answer in answers] == [200, 200, 429], [a.text for a in answers]
        assert answers[0].headers["x-sentry-rate-limits"] == NEVER_KEPT_HEADER
        assert_attachments_held_back(answers[2], 429)
        assert dropped(client) == (before[0] + len(payloads), before[1] + sum(map(len, payloads)))
        # Events are counted apart: they still go through, and another key has buckets of its own.
        assert send(client, support.event_envelope(exception_event())).status_code == 200
        assert send(client, body(), project=2, auth=NODE_AUTH).status_code == 200
    stack.digest()
    assert support.count(stack, attachments) == 3 * len(payloads)


def test_an_event_over_the_attachment_quota_is_stored_without_its_attachments(stack: Stack) -> None:
    """Like Relay: only the attachments are dropped; the event is kept and the answer says to hold them back."""
    with stack.services.engine.begin() as connection:
        connection.execute(
            update(project_keys).where(project_keys.c.public_key == NODE_KEY).values(attachment_rate_limit_per_minute=1)
        )
    first, second = message_event("first"), message_event("second")
    kept = send(stack.client, with_event(first, attachment(b"kept")), project=2, auth=NODE_AUTH)
    assert kept.status_code == 200 and kept.headers["x-sentry-rate-limits"] == NEVER_KEPT_HEADER
    answer = send(stack.client, with_event(second, attachment(b"dropped"), attachment(b"x")), project=2, auth=NODE_AUTH)
    assert answer.json() == {"id": second["event_id"]}
    assert_attachments_held_back(answer, 200)
    assert answer.headers["x-sentry-rate-limits"].endswith(", " + NEVER_KEPT_HEADER)
    # The Python key has the server-wide quota (600 a minute): untouched.
    assert send(stack.client, with_event(message_event("python"), attachment(b"ok"))).status_code == 200
    stack.digest()
    with stack.services.engine.connect() as connection:
        stored = {row.event_id for row in connection.execute(select(events.c.event_id))}
        files = dict(connection.execute(select(attachments.c.event_id, attachments.c.data)).all())
    assert {first["event_id"], second["event_id"]} <= stored
    assert files.get(first["event_id"]) == b"kept" and second["event_id"] not in files


def test_a_refused_quota_spends_nothing_from_the_other() -> None:
    moment = [1000.0]
    limiter = RateLimiter(clock=lambda: moment[0])
    assert limiter.take_all([("count", 10, 1), ("bytes", 100, 101)]) == 60.0  # more than a minute's bytes: never
    assert limiter.take_all([("count", 10, 10), ("bytes", 100, 100)]) == 0.0  # nothing was spent by the refusal
    assert limiter.take_all([("count", 10, 1), ("bytes", 100, 0)]) == pytest.approx(6.0)
    moment[0] += 6.0
    assert limiter.take_all([("count", 10, 1), ("bytes", 0, 10**9)]) == 0.0  # 0: that quota is off


# --- caps per envelope -------------------------------------------------------------------------------------

CAPS = [
    # 1,000 items is as many as an envelope may hold at all (ingest.envelope.MAX_ITEMS): no room for the event.
    (
        "1,000 attachments",
        {},
        [attachment(b"x", f"f{i}.txt") for i in range(1000)],
        400,
        "100 attachments per envelope",
    ),
    (
        "bytes, counted decompressed",
        {"max_envelope_attachment_bytes": "64KB"},
        [({"type": "event"}, orjson.dumps(message_event("with big files")))]
        + [attachment(b"\0" * 30_000, f"f{i}.bin") for i in range(3)],
        413,
        "65536 attachment bytes per envelope",
    ),
]


@pytest.mark.parametrize(("name", "flags", "items", "status", "cap"), CAPS, ids=[case[0] for case in CAPS])
def test_an_envelope_over_an_attachment_cap_is_refused_whole(
    stack: Stack, name: str, flags: dict[str, str], items: list[Any], status: int, cap: str
) -> None:
    event_id = new_id()
    with ingest_with(stack, **flags) as client:
        refused = send(client, envelope(*items, header={"event_id": event_id}), gzipped=True)
        assert refused.status_code == status, refused.text
        assert cap in refused.headers["x-sentry-error"]
        assert stack.services.inbox.backlog() == 0
        files = [item for item in items if item[0]["type"] == "attachment"]
        assert send(client, with_event(exception_event(), *files[:2])).status_code == 200  # within the caps
    stack.digest()
    assert support.count(stack, events, events.c.event_id == event_id) == 0
    assert support.count(stack, attachments, attachments.c.event_id == event_id) == 0
    assert support.count(stack, attachments) == 2


def test_an_envelope_at_the_attachment_cap_is_accepted(stack: Stack) -> None:
    files = [attachment(b"x", f"f{i}.txt") for i in range(100)]
    assert send(stack.client, with_event(exception_event(), *files)).status_code == 200


# --- the event page and the download -----------------------------------------------------------------------

FILES = [
    attachment(b"<html><script>alert(1)</script></html>", SCRIPT_NAME, "text/html"),
    attachment(b"\x89PNG\r\n\x1a\n\0\0", "dump?token=s3cr3tvalue1234.png", "image/png"),
    attachment(b"plain log line\n" * 100, "worker.log", "text/plain"),
    attachment(
        b"\xd0\xbe\xd0\xba", "отчёт 2026.txt", "text/plain; charset=utf-8"
    ),  # not Latin-1: no header can carry it
]


def _event_with_files(stack: Stack) -> tuple[int, str, dict[str, int]]:
    """An event with FILES, digested: its issue, its id and the attachment ids by stored file name."""
    event = exception_event()
    assert send(stack.client, with_event(event, *FILES)).status_code == 200
    stack.digest()
    with stack.services.engine.connect() as connection:
        rows = connection.execute(select(attachments.c.filename, attachments.c.id)).all()
    return issue_of(stack, event["event_id"]), event["event_id"], {name: int(id_) for name, id_ in rows}


def test_the_event_page_lists_its_attachments_escaped(stack: Stack) -> None:
    issue, _, ids = _event_with_files(stack)
    assert "dump?token=[Filtered:secret_param]" in ids  # the name as the digest stored it: scrubbed
    client = admin_client(stack)
    page = client.get(f"/issues/{issue}")
    assert page.status_code == 200
    table = re.search(r'<table class="attachments">(.*?)</table>', page.text, re.S)
    assert table, page.text
    rows = re.findall(r'<td class="filename">(.*?)</td><td>(.*?)</td>\s*<td class="number"[^>]*>(.*?)</td>', table[1])
    shown = [(html.unescape(name), html.unescape(kind), size) for name, kind, size in rows]
    assert shown == [
        (SCRIPT_NAME, "text/html", f"{len(FILES[0][1])} bytes"),
        ("dump?token=[Filtered:secret_param]", "image/png", "10 bytes"),
        ("worker.log", "text/plain", "1.5 KB"),
        ("отчёт 2026.txt", "text/plain; charset=utf-8", "4 bytes"),
    ]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.html" in table[1] and foreign_markup(page.text) == []
    assert "s3cr3tvalue1234" not in page.text
    for attachment_id in ids.values():
        assert f'href="/issues/{issue}/attachments/{attachment_id}"' in table[1]

    as_member = member(stack).get(f"/issues/{issue}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.html" in as_member and "/attachments/" not in as_member
    assert "Only administrators can download attachments." in as_member


def test_an_administrator_downloads_an_attachment_as_a_file(stack: Stack) -> None:
    issue, _, ids = _event_with_files(stack)
    client = admin_client(stack)
    names = [SCRIPT_NAME, "dump?token=[Filtered:secret_param]", "worker.log", "отчёт 2026.txt"]
    saved_as = {}
    for (_, data), stored_name in zip(FILES, names, strict=True):
        answer = client.get(f"/issues/{issue}/attachments/{ids[stored_name]}")
        assert answer.status_code == 200 and answer.content == data
        assert answer.headers["content-type"] == "application/octet-stream"  # never the sender's text/html
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["content-security-policy"].startswith("default-src 'self'")
        disposition = answer.headers["content-disposition"]
        plain = re.fullmatch(
            r'attachment; filename="([A-Za-z0-9._-]+)"; filename\*=UTF-8\'\'([A-Za-z0-9%._~-]+)', disposition
        )
        assert plain, disposition
        saved_as[stored_name] = (plain[1], unquote(plain[2]))
    assert saved_as == {
        SCRIPT_NAME: ("script_alert_1__script_.html", "<script>alert(1)<_script>.html"),  # no path separators
        "dump?token=[Filtered:secret_param]": (
            "dump_token_Filtered_secret_param",
            "dump?token=[Filtered:secret_param]",
        ),
        "worker.log": ("worker.log", "worker.log"),
        "отчёт 2026.txt": ("2026.txt", "отчёт 2026.txt"),
    }


def test_the_download_is_for_administrators_only(stack: Stack) -> None:
    issue, _, ids = _event_with_files(stack)
    path = f"/issues/{issue}/attachments/{ids[SCRIPT_NAME]}"
    refused = member(stack).get(path)
    assert refused.status_code == 403 and b"<script>" not in refused.content
    add_user(stack, "outsider@example.com")  # a member of no project: the issue is hidden from them
    outsider = TestClient(stack.app)
    assert login(outsider, "outsider@example.com").status_code == 303
    assert outsider.get(path).status_code == 404
    anonymous = TestClient(stack.app).get(path, follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login?next=")
    # An administrator asking for it through another issue, or for an id that is not there, gets 404.
    other_event = support.send_ok(stack, exception_event("OtherError", frames=[]))
    stack.digest()
    other = issue_of(stack, other_event)
    client = admin_client(stack)
    for wrong in (
        f"/issues/{other}/attachments/{ids[SCRIPT_NAME]}",
        f"/issues/{issue}/attachments/999999",
        f"/issues/{issue}/attachments/x",
        f"/issues/{issue}/attachments/99999999999999999999",
    ):
        assert client.get(wrong).status_code == 404, wrong


# --- the REST API ------------------------------------------------------------------------------------------


def test_the_api_lists_an_events_attachments(stack: Stack) -> None:
    _, event_id, ids = _event_with_files(stack)
    listed = stack.api(f"/events/{event_id}/attachments")
    assert listed.status_code == 200, listed.text
    assert [(a["id"], a["filename"], a["content_type"], a["size"]) for a in listed.json()] == [
        (ids[SCRIPT_NAME], SCRIPT_NAME, "text/html", len(FILES[0][1])),
        (ids["dump?token=[Filtered:secret_param]"], "dump?token=[Filtered:secret_param]", "image/png", 10),
        (ids["worker.log"], "worker.log", "text/plain", 1500),
        (ids["отчёт 2026.txt"], "отчёт 2026.txt", "text/plain; charset=utf-8", 4),
    ]
    assert all(a["project_id"] == 1 and a["event_id"] == event_id for a in listed.json())
    assert stack.api(f"/projects/python/events/{event_id}/attachments").json() == listed.json()
    assert stack.api(f"/projects/node/events/{event_id}/attachments").status_code == 404
    assert stack.api(f"/events/{new_id()}/attachments").status_code == 404
    assert stack.api(f"/projects/nope/events/{event_id}/attachments").status_code == 404
    # The same event id in another project: the global list will not pick one, the project's lists answer.
    node_event = message_event("the same id in node", event_id=event_id)
    assert (
        send(stack.client, with_event(node_event, attachment(b"node's")), project=2, auth=NODE_AUTH).status_code == 200
    )
    stack.digest()
    conflict = stack.api(f"/events/{event_id}/attachments")
    assert conflict.status_code == 409 and conflict.json()["projects"] == ["node", "python"]
    assert stack.api(f"/projects/python/events/{event_id}/attachments").json() == listed.json()
    node_files = stack.api(f"/projects/node/events/{event_id}/attachments").json()
    assert [(a["project_id"], a["filename"], a["size"]) for a in node_files] == [(2, "run.log", 6)]


# --- a key's own quotas on the settings page ---------------------------------------------------------------


def test_a_keys_attachment_limits_are_set_shown_enforced_and_cleared(stack: Stack) -> None:
    client = admin_client(stack)
    limits = f"{SETTINGS}/keys/1/attachment-limits"
    set_ = post(client, limits, {"attachment_rate_limit": "1", "attachment_bytes_limit": " 1KB "})
    assert set_.status_code == 303
    key = keys(stack)[0]
    assert (key.attachment_rate_limit_per_minute, key.attachment_bytes_per_minute) == (1, 1024)
    page = client.get(SETTINGS).text
    assert '<span class="attachment-rate">1</span>' in page and '<span class="attachment-bytes">1 KB</span>' in page
    assert send(stack.client, only_attachments(attachment(b"one"))).status_code == 200
    assert_attachments_held_back(send(stack.client, only_attachments(attachment(b"two"))), 429)

    assert post(client, limits, {"attachment_rate_limit": "", "attachment_bytes_limit": ""}).status_code == 303
    key = keys(stack)[0]
    assert (key.attachment_rate_limit_per_minute, key.attachment_bytes_per_minute) == (None, None)
    page = client.get(SETTINGS).text
    assert '<span class="attachment-rate">server default (600)</span>' in page
    assert '<span class="attachment-bytes">server default (100 MB)</span>' in page

    created = post(
        client,
        f"{SETTINGS}/keys",
        {"label": "uploads", "attachment_rate_limit": "50", "attachment_bytes_limit": "20MB"},
    )
    assert created.status_code == 303
    new = keys(stack)[-1]
    assert (new.rate_limit_per_minute, new.attachment_rate_limit_per_minute, new.attachment_bytes_per_minute) == (
        None,
        50,
        20 * 1024 * 1024,
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"attachment_rate_limit": "0"}, "attachment rate limit must be a whole number"),
        ({"attachment_rate_limit": "1.5"}, "attachment rate limit must be a whole number"),
        ({"attachment_rate_limit": "1000001"}, "from 1 to 1000000"),
        ({"attachment_bytes_limit": "0"}, "attachment bytes per minute must be a size"),
        ({"attachment_bytes_limit": "lots"}, "attachment bytes per minute must be a size"),
        ({"attachment_bytes_limit": "2TB"}, "from 1 byte to 1TB"),
        ({"attachment_bytes_limit": "-1"}, "attachment bytes per minute must be a size"),
        ({"attachment_bytes_limit": "١٢"}, "attachment bytes per minute must be a size"),
    ],
)
def test_invalid_attachment_limits_answer_400_and_change_nothing(
    stack: Stack, fields: dict[str, str], message: str
) -> None:
    client = admin_client(stack)
    before = snapshot(stack)
    for path, data in (
        (f"{SETTINGS}/keys/1/attachment-limits", fields),
        (f"{SETTINGS}/keys", {"label": "x", **fields}),
    ):
        refused = post(client, path, data)
        assert refused.status_code == 400 and message in error_text(refused), path
    assert snapshot(stack) == before


def test_two_files_alike_in_name_and_size_are_both_kept_and_a_resent_envelope_adds_none(stack: Stack) -> None:
    event = message_event("two logs of one run")
    body = with_event(event, attachment(b"first  line\n", "log.txt"), attachment(b"second line\n", "log.txt"))
    assert send(stack.client, body).status_code == 200
    assert send(stack.client, body).status_code == 200  # the SDK sent it again: one batch holds both
    stack.digest()
    assert send(stack.client, body).status_code == 200  # and once more after the first was stored
    stack.digest()
    with stack.services.engine.connect() as connection:
        stored = connection.execute(
            select(attachments.c.data).where(attachments.c.event_id == event["event_id"]).order_by(attachments.c.id)
        ).scalars()
        assert [bytes(data) for data in stored] == [b"first  line\n", b"second line\n"]
