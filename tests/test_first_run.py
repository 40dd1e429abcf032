"""The first run is calm: a server without SMTP lets the default e-mail channel wait ("needs SMTP") instead of
failing it, and the same channel mails as soon as a server with SMTP settings runs; the first administrator's
password file holds the password alone."""

from __future__ import annotations

import stat
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from stackwatch.server.services import Services
from stackwatch.server.storage import accounts
from stackwatch.server.storage.schema import alert_channels, alert_outbox
from tests import support
from tests.alert_support import RecordingHandler, smtp_server
from tests.conftest import ServerFactory, ServerProcess

WAIT_SECONDS = 30.0


def send_events(server: ServerProcess, *kinds: str) -> None:
    """One new issue per exception type, through the server's envelope endpoint."""
    for kind in kinds:
        event = support.exception_event(kind=kind, value="upstream timed out", level="error")
        response = httpx.post(
            f"{server.base_url}/api/1/envelope/",
            content=support.event_envelope(event),
            headers={"X-Sentry-Auth": support.AUTH},
            timeout=10,
        )
        assert response.status_code == 200, response.text
    server.wait_digested()


def administrators(server: ServerProcess) -> dict[str, Any]:
    response = httpx.get(
        f"{server.base_url}/api/v1/projects/python/alert-channels",
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    [channel] = [c for c in response.json() if c["name"] == "Administrators"]
    return dict(channel)


def server_log(server: ServerProcess) -> str:
    return (server.data_dir.parent / f"server-{server.port}.log").read_text(encoding="utf-8", errors="replace")


def test_without_smtp_the_administrators_channel_waits_and_nothing_fails(
    services: Services, start_server: ServerFactory
) -> None:
    server = start_server(STACKWATCH_LOG_LEVEL="info")
    send_events(server, "TimeoutError", "ConnectionRefusedError")
    time.sleep(3)  # the dispatcher polls every second: room for it to attempt (and fail) what it was given
    channel = administrators(server)
    assert channel["healthy"] is True and channel["consecutive_failures"] == 0 and channel["last_error"] is None
    assert channel["status"] == "needs_smtp"
    assert "STACKWATCH_SMTP_HOST" in channel["waiting"]
    with services.engine.connect() as connection:
        # Dropped, not queued: nothing in the outbox to retry or to pile up.
        assert list(connection.execute(select(alert_outbox.c.status))) == []
    log = server_log(server)
    assert "WARNING" not in log and "ERROR" not in log, log
    assert log.count("alerts to email channels are dropped until the server can send them") == 1, (
        log
    )  # one info line, however many notifications


def test_the_same_channel_mails_once_smtp_is_configured(services: Services, start_server: ServerFactory) -> None:
    first = start_server()
    send_events(first, "BeforeSmtpError")
    first.stop()
    handler = RecordingHandler()
    with smtp_server(handler) as smtp:
        second = start_server(
            STACKWATCH_SMTP_HOST="127.0.0.1",
            STACKWATCH_SMTP_PORT=str(smtp.port),
            STACKWATCH_SMTP_SECURITY="none",
            STACKWATCH_SMTP_FROM="stackwatch@example.com",
        )
        assert administrators(second)["status"] == "healthy"
        send_events(second, "AfterSmtpError")
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline and not handler.received:
            time.sleep(0.1)
    [mail] = handler.received  # the new issue after SMTP; the one before it was dropped, not kept
    assert mail.rcpt_tos == ["admin@stackwatch.local"]
    assert "AfterSmtpError" in mail.message.get_body(("plain",)).get_content()
    with services.engine.connect() as connection:
        failures = connection.execute(select(alert_channels.c.consecutive_failures)).scalars()
        assert set(failures) == {0}


def test_the_admin_password_file_holds_the_password_alone_and_old_files_are_still_read(tmp_path: Path) -> None:
    path = accounts.write_admin_password(tmp_path, "Gen3rated-pass_word")
    assert path.read_text(encoding="utf-8") == "Gen3rated-pass_word\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert accounts.read_admin_password(tmp_path) == ("admin@stackwatch.local", "Gen3rated-pass_word")
    path.write_text("Ops@Example.com older-format\n", encoding="utf-8")  # what earlier versions wrote
    assert accounts.read_admin_password(tmp_path) == ("ops@example.com", "older-format")
    accounts.forget_admin_password(tmp_path, "admin@stackwatch.local")  # not this account's: kept
    assert path.exists()
    accounts.forget_admin_password(tmp_path, "ops@example.com")
    assert not path.exists() and accounts.read_admin_password(tmp_path) is None
    accounts.write_admin_password(tmp_path, "second-generated")
    accounts.forget_admin_password(tmp_path, "ADMIN@stackwatch.local")
    assert not path.exists()
