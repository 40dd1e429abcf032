"""Compression dictionaries: trained per project from stored payloads, named by each payload's frame, and every
payload stays readable (none, an older dictionary, a newer one) through the API and the dashboard."""

from __future__ import annotations

from typing import Any

import pytest
import zstandard
from sqlalchemy import select, update
from starlette.testclient import TestClient

from stackwatch.server.digest.dictionaries import DictionaryPolicy
from stackwatch.server.storage.payloads import dictionary_id, read_payload
from stackwatch.server.storage.schema import compression_dicts, events
from tests.conftest import Stack
from tests.support import exception_event, frame, issue_of, send_ok
from tests.test_web_auth import add_user, login

SMALL = DictionaryPolicy(train_after=40, retrain_after=30, samples=200, dict_bytes=8 << 10, probe=10)


def workflow_event(n: int) -> dict[str, Any]:
    """An event much like the others of its project: the same frames and contexts, its own run and values."""
    frames = [
        frame("run_step", "    result = step.execute(ctx)", module="meshhook.worker.runner", lineno=88),
        frame(f"call_crm_{n % 3}", "    response = client.post(url, json=body)", module="meshhook.executor.http"),
        frame("post", "    raise ConnectionError(url)", module="httpx._client", in_app=False),
    ]
    return exception_event(
        "ConnectionError",
        f"POST https://crm.example.com/v2/orders/{n} failed: connection refused",
        frames,
        tags={"component": "http-executor", "workflow_id": f"wf_{n % 4}", "run_id": f"run_{n:06d}"},
        contexts={
            "workflow": {"workflow_id": f"wf_{n % 4}", "run_id": f"run_{n:06d}", "step_id": "call-crm"},
            "runtime": {"name": "CPython", "version": "3.12.3"},
        },
        breadcrumbs={"values": [{"category": "http", "message": f"GET /orders/{n + i} 200"} for i in range(6)]},
        user={"id": f"user-{n % 17}"},
        release="meshhook@1.4.2",
        environment="production",
    )


def send_events(stack: Stack, numbers: range) -> list[str]:
    ids = [send_ok(stack, workflow_event(n)) for n in numbers]
    stack.digest()
    return ids


def payloads(stack: Stack) -> dict[str, bytes]:
    with stack.services.engine.connect() as connection:
        return {row.event_id: bytes(row.payload) for row in connection.execute(select(events))}


def train(stack: Stack) -> int | None:
    stack.services.digester.dictionary_policy = SMALL
    return stack.services.digester.maintain_dictionaries(force=True)


@pytest.fixture
def admin(stack: Stack) -> TestClient:
    add_user(stack, "ops@example.com", admin=True)
    login(stack.client, "ops@example.com")
    return stack.client


def assert_readable(stack: Stack, admin: TestClient, event_id: str) -> None:
    answer = stack.api(f"/projects/python/events/{event_id}")
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert data["event_id"] == event_id and "connection refused" in data["exception"]["values"][0]["value"]
    page = admin.get(f"/issues/{issue_of(stack, event_id)}", params={"event": event_id})
    assert page.status_code == 200 and f"Event {event_id}" in page.text and "cannot be read" not in page.text


def test_no_dictionary_before_enough_events(stack: Stack) -> None:
    send_events(stack, range(10))
    assert train(stack) is None
    assert {dictionary_id(payload) for payload in payloads(stack).values()} == {0}


def test_dictionary_trained_used_and_old_payloads_still_readable(stack: Stack, admin: TestClient) -> None:
    old = send_events(stack, range(50))
    assert train(stack) == 1
    new = send_events(stack, range(50, 60))
    stored = payloads(stack)
    assert {dictionary_id(stored[event_id]) for event_id in old} == {0}
    assert {dictionary_id(stored[event_id]) for event_id in new} == {1}
    # Smaller than the same JSON compressed without a dictionary, by far.
    with stack.services.engine.connect() as connection:
        plain = zstandard.ZstdCompressor(level=3)
        for event_id in new:
            raw = read_payload(connection, stored[event_id])
            assert len(stored[event_id]) * 2 < len(plain.compress(raw))
    for event_id in (old[0], old[-1], new[0], new[-1]):
        assert_readable(stack, admin, event_id)


def test_retraining_makes_a_new_id_and_every_payload_stays_readable(stack: Stack, admin: TestClient) -> None:
    first = send_events(stack, range(50))
    assert train(stack) == 1
    second = send_events(stack, range(50, 90))  # more than SMALL.retrain_after
    assert train(stack) == 2
    third = send_events(stack, range(90, 95))
    stored = payloads(stack)
    assert [dictionary_id(stored[ids[0]]) for ids in (first, second, third)] == [0, 1, 2]
    with stack.services.engine.connect() as connection:
        rows = connection.execute(select(compression_dicts.c.id, compression_dicts.c.project_id)).all()
    assert sorted(rows) == [(1, 1), (2, 1)]
    for event_id in (first[0], second[0], third[0]):
        assert_readable(stack, admin, event_id)
    assert train(stack) is None  # nothing new since: no third dictionary


def test_another_digester_takes_the_newest_dictionary(stack: Stack) -> None:
    """A second process on the same database compresses with the dictionary the first one trained."""
    from stackwatch.server.digest.worker import Digester

    send_events(stack, range(50))
    assert train(stack) == 1
    other = Digester(stack.services.engine, stack.services.inbox, identity_key=b"x", dictionaries=False)
    stack.services.digester, original = other, stack.services.digester
    try:
        (event_id,) = send_events(stack, range(50, 51))
    finally:
        stack.services.digester = original
    assert dictionary_id(payloads(stack)[event_id]) == 1


def test_a_missing_dictionary_is_a_clear_error_not_a_crash(stack: Stack, admin: TestClient) -> None:
    (event_id,) = send_events(stack, range(1))
    samples = [str(workflow_event(n)).encode() for n in range(60)]
    lost = zstandard.train_dictionary(4096, samples, dict_id=77)
    with stack.services.engine.begin() as connection:
        raw = read_payload(connection, payloads(stack)[event_id])
        framed = zstandard.ZstdCompressor(dict_data=lost).compress(raw)
        connection.execute(update(events).where(events.c.event_id == event_id).values(payload=framed))
    answer = stack.api(f"/projects/python/events/{event_id}")
    assert answer.status_code == 500
    assert "compression dictionary 77" in answer.json()["detail"]
    page = admin.get(f"/issues/{issue_of(stack, event_id)}", params={"event": event_id})
    assert page.status_code == 200
    assert f"Event {event_id} is stored but cannot be read" in page.text and "dictionary 77" in page.text
    # The event list, which does not open payloads, is unaffected.
    listed = stack.api(f"/issues/{issue_of(stack, event_id)}/events")
    assert [event["event_id"] for event in listed.json()["data"]] == [event_id]
