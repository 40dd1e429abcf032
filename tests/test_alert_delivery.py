"""Delivery of the outbox: retried through a receiver's outage and delivered once, given up on permanent errors,
resumed by a server started later, channel health recorded."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update

from stackwatch.server.alerts import channels as channel_modules
from stackwatch.server.alerts import manage
from stackwatch.server.alerts.dispatcher import Dispatcher
from stackwatch.server.services import Services
from stackwatch.server.storage import accounts
from stackwatch.server.storage.db import now
from stackwatch.server.storage.schema import alert_channels, alert_outbox, alert_rules
from tests import support
from tests.alert_support import Answer, RecordingHandler, RecordingServer, smtp_server
from tests.conftest import ServerFactory, Stack, free_port


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def receivers() -> Iterator[list[RecordingServer]]:
    """Receivers started by the test (on a port chosen before), stopped after it."""
    started: list[RecordingServer] = []
    yield started
    for receiver in started:
        receiver.__exit__(None, None, None)


def receiver_on(port: int, receivers: list[RecordingServer], status: int = 200) -> RecordingServer:
    receiver = RecordingServer(port).__enter__()
    receiver.default = Answer(status)
    receivers.append(receiver)
    return receiver


def keys(receiver: RecordingServer) -> list[str]:
    return [r.headers["x-stackwatch-idempotency-key"] for r in receiver.requests]


def webhook_rule(stack: Stack, port: int) -> int:
    """The project's default rules replaced by: new issue → a webhook on ``port``."""
    with stack.services.engine.begin() as connection:
        connection.execute(delete(alert_rules))
        channel = manage.create_channel(
            connection,
            1,
            name="hook",
            kind="webhook",
            config={"url": f"http://127.0.0.1:{port}/hook", "secret": "k" * 32},
        )
        manage.create_rule(connection, 1, {"name": "new", "trigger": "new_issue", "channels": [channel]})
    return channel


def outbox_rows(stack: Stack) -> list[Any]:
    with stack.services.engine.connect() as connection:
        return list(connection.execute(select(alert_outbox).order_by(alert_outbox.c.id)))


def channel_row(stack: Stack, channel: int) -> Any:
    with stack.services.engine.connect() as connection:
        return connection.execute(select(alert_channels).where(alert_channels.c.id == channel)).one()


def run_until(dispatcher: Dispatcher, done: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not done():
        dispatcher.run_once()
        time.sleep(0.05)
    assert done(), "not delivered in time"


def test_delivered_exactly_once_after_the_receiver_comes_back(
    stack: Stack, port: int, receivers: list[RecordingServer]
) -> None:
    channel = webhook_rule(stack, port)
    support.send_ok(stack, support.exception_event())
    stack.digest()
    dispatcher = Dispatcher(stack.services.engine, stack.settings, retry_seconds=0.05)
    for _ in range(3):  # the receiver is down: transient failures, retried
        dispatcher.run_once()
        time.sleep(0.15)
    [row] = outbox_rows(stack)
    assert (row.status, row.attempts >= 2) == ("pending", True)
    assert channel_row(stack, channel).consecutive_failures >= 2

    receiver = receiver_on(port, receivers)
    run_until(dispatcher, lambda: outbox_rows(stack)[0].status == "sent")
    for _ in range(5):
        dispatcher.run_once()
    assert keys(receiver) == [row.idempotency_key]  # once, with the key it had from the start
    assert receiver.requests[0].json()["notification"]["reason"] == "New issue"
    health = channel_row(stack, channel)
    assert (health.consecutive_failures, health.last_success_at is not None) == (0, True)


def test_a_permanent_failure_is_given_up_and_the_channel_marked_unhealthy(
    stack: Stack, port: int, receivers: list[RecordingServer]
) -> None:
    receiver = receiver_on(port, receivers, status=410)
    channel = webhook_rule(stack, port)
    for kind in ("TypeError", "KeyError", "IndexError"):
        support.send_ok(stack, support.exception_event(kind=kind))
    stack.digest()
    dispatcher = Dispatcher(stack.services.engine, stack.settings, retry_seconds=0.05)
    run_until(dispatcher, lambda: all(r.status == "failed" for r in outbox_rows(stack)))
    for _ in range(3):
        dispatcher.run_once()
    assert len(receiver.requests) == 3  # one attempt each: a 410 is not retried
    assert all(r.attempts == 1 and "410" in (r.last_error or "") for r in outbox_rows(stack))
    with stack.services.engine.connect() as connection:
        [shown] = [c for c in manage.list_channels(connection, 1) if c["id"] == channel]
    assert shown["healthy"] is False and "410" in shown["last_error"]


def pending(connection: Any, channel: int, key: str) -> None:
    """A notification in the outbox, due now, as the digest writes it."""
    payload = {"idempotency_key": key, "project": "python", "issue_id": 0, "title": "t", "culprit": ""}
    payload.update(level="error", status="unresolved", reason="New issue")
    connection.execute(
        insert(alert_outbox).values(
            idempotency_key=key,
            channel_id=channel,
            payload=json.dumps(payload),
            status="pending",
            attempts=0,
            next_attempt_at=now(),
            created_at=now(),
        )
    )


def test_pending_notifications_are_delivered_by_a_server_started_later(
    services: Services, start_server: ServerFactory, port: int, receivers: list[RecordingServer]
) -> None:
    """Notifications left pending (a server that died before sending them) go out when a server starts."""
    with services.engine.begin() as connection:
        channel = manage.create_channel(
            connection,
            1,
            name="hook",
            kind="webhook",
            config={"url": f"http://127.0.0.1:{port}/hook", "secret": "k" * 32},
        )
        pending(connection, channel, "swn_left_1")
        pending(connection, channel, "swn_left_2")
    receiver = receiver_on(port, receivers)
    start_server()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(receiver.requests) < 2:
        time.sleep(0.1)
    assert sorted(keys(receiver)) == ["swn_left_1", "swn_left_2"]
    with services.engine.connect() as connection:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            statuses = list(connection.execute(select(alert_outbox.c.status).order_by(alert_outbox.c.id)).scalars())
            if statuses == ["sent", "sent"]:
                break
            connection.rollback()
            time.sleep(0.1)
    assert statuses == ["sent", "sent"]


def test_an_unexpected_channel_error_is_retried_not_fatal(stack: Stack) -> None:
    with stack.services.engine.begin() as connection:
        connection.execute(delete(alert_rules))
        channel = connection.execute(
            insert(alert_channels)
            .values(project_id=1, name="odd", kind="nonexistent", config="{}", hourly_cap=10, created_at=now())
            .returning(alert_channels.c.id)
        ).scalar_one()
        pending(connection, channel, "swn_odd")
    dispatcher = Dispatcher(stack.services.engine, stack.settings, retry_seconds=60)
    assert dispatcher.run_once() == 1
    [row] = outbox_rows(stack)
    assert row.status == "pending" and row.last_error


def test_a_new_issue_arrives_by_email_at_a_real_smtp_server(stack: Stack) -> None:
    """The whole path: an event, the digest, the default rule, the outbox, the dispatcher, SMTP."""
    handler = RecordingHandler()
    with smtp_server(handler) as smtp:
        settings = dataclasses.replace(
            stack.settings, smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_security="none", smtp_from="sw@test"
        )
        stack.services.digester.waiting_kinds = channel_modules.waiting_kinds(settings)  # SMTP: e-mail does not wait
        with stack.services.engine.begin() as connection:
            accounts.create_user(connection, "ops@example.com", "a long password", admin=True)
        support.send_ok(stack, support.exception_event(kind="TimeoutError", value="upstream timed out", level="error"))
        support.send_ok(stack, support.exception_event(kind="TimeoutError", value="upstream timed out", level="error"))
        stack.digest()
        dispatcher = Dispatcher(stack.services.engine, settings, retry_seconds=0.05)
        run_until(dispatcher, lambda: bool(handler.received))
    [mail] = handler.received
    assert mail.rcpt_tos == ["ops@example.com"]  # the administrators, looked up when sending
    text = mail.message.get_body(("plain",)).get_content()
    html = mail.message.get_body(("html",)).get_content()
    issue_id = json.loads(outbox_rows(stack)[0].payload)["issue_id"]
    for body in (text, html):
        assert "TimeoutError: upstream timed out" in body
        assert f"{stack.settings.base_url}/issues/{issue_id}" in body
        assert "New issue" in body
    assert "2" in text and "TimeoutError" in mail.message["Subject"]
    assert [r.status for r in outbox_rows(stack)] == ["sent"]


def test_old_sent_and_failed_notifications_are_pruned_pending_ones_never(stack: Stack) -> None:
    with stack.services.engine.begin() as connection:
        channel = manage.create_channel(
            connection, 1, name="hook", kind="webhook", config={"url": "http://127.0.0.1:9/hook"}
        )
        for key in ("old_sent", "old_failed", "old_pending", "new_sent"):
            pending(connection, channel, key)
        connection.execute(
            update(alert_outbox).where(alert_outbox.c.idempotency_key == "old_sent").values(status="sent")
        )
        connection.execute(
            update(alert_outbox).where(alert_outbox.c.idempotency_key == "old_failed").values(status="failed")
        )
        connection.execute(
            update(alert_outbox).where(alert_outbox.c.idempotency_key == "new_sent").values(status="sent")
        )
        connection.execute(
            update(alert_outbox)
            .where(alert_outbox.c.idempotency_key.like("old_%"))
            .values(created_at=alert_outbox.c.created_at - 31 * 86400)
        )
    dispatcher = Dispatcher(stack.services.engine, stack.settings)
    assert dispatcher.prune() == 2
    assert sorted(r.idempotency_key for r in outbox_rows(stack)) == ["new_sent", "old_pending"]
