"""What a running ``stackwatch serve`` writes to its log: never a channel's URL, credentials or tokens, at the
default level or at debug, while notifications are delivered and while they fail; the first administrator's
password on the first start only."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from stackwatch.server.logs import redact
from stackwatch.server.services import Services
from stackwatch.server.storage.schema import alert_outbox
from tests import support
from tests.alert_support import Answer, RecordingServer
from tests.conftest import ServerFactory, ServerProcess

# Planted in the channels' URLs and secrets; none may appear in the log.
PLANTED = (
    "T0PLANTED",
    "slackpathSECRET1",
    "hookpassSECRET2",
    "hooktokenSECRET3",
    "hmackeySECRET4",
    "appassSECRET5",
    "appathSECRET6",
    "slackfailSECRET7",
    "failpassSECRET8",
    "failtokenSECRET9",
    "apfailSECRET10",
    "discordtokenSECRET11",
)


def channels(ok: RecordingServer, failing: RecordingServer) -> list[tuple[str, dict[str, Any]]]:
    """Slack, webhook (credentials in the URL, a secret query parameter) and Apprise; delivered and failing."""
    return [
        ("slack", {"url": f"{ok.url}/services/T0PLANTED/B0PLANTED/slackpathSECRET1"}),
        ("webhook", {"url": f"http://hookuser:hookpassSECRET2@127.0.0.1:{ok.port}/hook?token=hooktokenSECRET3"}),
        ("apprise", {"url": f"json://apuser:appassSECRET5@127.0.0.1:{ok.port}/appathSECRET6"}),
        ("slack", {"url": f"{failing.url}/services/T0PLANTED/B1PLANTED/slackfailSECRET7"}),
        ("webhook", {"url": f"http://u:failpassSECRET8@127.0.0.1:{failing.port}/h?access_token=failtokenSECRET9"}),
        ("apprise", {"url": f"json://u:pw@127.0.0.1:{failing.port}/apfailSECRET10"}),
        ("apprise", {"url": "discord://123456/discordtokenSECRET11"}),  # no network here: fails on the lookup
    ]


def api(server: ServerProcess, method: str, path: str, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {server.token}"}
    return httpx.request(method, f"{server.base_url}/api/v1{path}", json=body, headers=headers, timeout=30)


def log_of(server: ServerProcess) -> str:
    return (server.data_dir.parent / f"server-{server.port}.log").read_text(encoding="utf-8", errors="replace")


@pytest.mark.parametrize("level", ["info", "debug"])
def test_the_log_holds_no_channel_secret(start_server: ServerFactory, services: Services, level: str) -> None:
    with RecordingServer() as ok, RecordingServer() as failing:
        failing.default = Answer(500, b"upstream down")
        server = start_server(STACKWATCH_LOG_LEVEL=level)
        ids = []
        for number, (kind, config) in enumerate(channels(ok, failing)):
            if kind == "webhook":
                config = {**config, "secret": f"hmackeySECRET4-{number:02d}"}
            created = api(
                server,
                "POST",
                "/projects/python/alert-channels",
                {"name": f"c{number}", "kind": kind, "config": config},
            )
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        rule = {"name": "every new issue", "trigger": "new_issue", "channels": ids}
        assert api(server, "POST", "/projects/python/alert-rules", rule).status_code == 201
        tested = api(server, "POST", f"/projects/python/alert-channels/{ids[4]}/test")  # fails, in the web process
        assert tested.status_code == 502, tested.text
        event = support.exception_event(kind="PlantedError", value="token=hooktokenSECRET3 in a message")
        sent = httpx.post(
            f"{server.base_url}/api/1/envelope/",
            content=support.event_envelope(event),
            headers={"X-Sentry-Auth": support.AUTH},
            timeout=30,
        )
        assert sent.status_code == 200, sent.text
        ok.wait_for(3, timeout=30)  # the control: Slack, webhook and Apprise were delivered
        wait_attempted(services, channel_ids=ids[3:])
        server.stop()
    text = log_of(server)
    assert [secret for secret in PLANTED if secret in text] == [], text
    assert "Uvicorn running on" in text
    assert (" DEBUG " in text) is (level == "debug"), "the control: the level really was " + level


def wait_attempted(services: Services, *, channel_ids: list[int], timeout: float = 30.0) -> None:
    """Until each failing channel's notification has been tried and failed at least once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with services.engine.connect() as connection:
            rows = connection.execute(
                select(alert_outbox.c.channel_id, alert_outbox.c.last_error).where(
                    alert_outbox.c.channel_id.in_(channel_ids)
                )
            ).all()
        if len(rows) == len(channel_ids) and all(row.last_error for row in rows):
            return
        time.sleep(0.1)
    raise AssertionError(f"failing channels not attempted in time: {rows}")


def test_the_first_password_is_printed_on_the_first_start_only(start_server: ServerFactory) -> None:
    first = start_server()
    first.stop()
    password_file = first.data_dir / "admin-password"
    password = password_file.read_text(encoding="utf-8")
    assert password.endswith("\n") and password.strip() and " " not in password  # the password alone, to paste
    password = password.strip()
    assert f"Login:      admin@stackwatch.local / {password}   " in log_of(first)
    assert f"(the password of admin@stackwatch.local is kept in {password_file} until you change it)" in log_of(first)
    second = start_server()
    second.stop()
    text = log_of(second)
    assert password not in text
    assert f"Login:      admin@stackwatch.local, whose password is in {password_file}" in text
    password_file.unlink()
    third = start_server()
    third.stop()
    assert "Login:      your administrator account" in log_of(third) and password not in log_of(third)


@pytest.mark.parametrize(
    ("line", "kept", "gone"),
    [
        (
            'HTTP Request: POST https://hooks.slack.com/services/T00/B00/XXXXsecret "HTTP/1.1 200 OK"',
            'POST https://hooks.slack.com/… "HTTP/1.1 200 OK"',
            "XXXXsecret",
        ),
        ("POST https://discord.com/api/webhooks/123/tokenpart", "https://discord.com/…", "tokenpart"),
        ("to http://user:pa55word@hooks.example.com:8443/x?token=abc", "http://hooks.example.com:8443/…", "pa55word"),
        ("Loaded tgram://123456:ABCDEFsecret/77 URL", "Loaded tgram://… URL", "ABCDEFsecret"),
        ("header Authorization: Bearer abcdefghijklmnop123", "Authorization: Bearer [Filtered", "abcdefghijklmnop123"),
        ('127.0.0.1:80 "POST /api/webhooks/1/tokenpart HTTP/1.1" 204 0', '"POST /… HTTP/1.1" 204', "tokenpart"),
        ("Max retries exceeded with url: /services/T/B/tokenpart (Caused", "url: /… (Caused", "tokenpart"),
        ("Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)", "http://127.0.0.1:8000 (Press", "…"),
    ],
)
def test_the_log_filter_redacts_urls_and_tokens(line: str, kept: str, gone: str) -> None:
    redacted = redact(line)
    assert kept in redacted and gone not in redacted
