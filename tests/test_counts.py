"""Session and client report counts are clamped, never poison (both backends, through ingest and the digest).

A ``client_report`` or ``sessions`` item is accepted whatever its numbers, so the digest must store something
sensible for each: a quantity of 2^64 - 1 used to make every batch fail (SQLite: OverflowError; PostgreSQL: bigint
out of range) until the envelope was quarantined, and two large ones turned a stored SQLite counter into a float.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from stackwatch.server.digest.items import MAX_QUANTITY, hour_of
from stackwatch.server.digest.store import MAX_COUNT
from stackwatch.server.digest.worker import DigestWorker
from stackwatch.server.storage.schema import client_report_counts, quarantine, session_counts
from tests.conftest import Stack
from tests.support import AUTH, envelope

STAMP = time.time() - 7200  # one fixed hour for every count, so a row can be prepared before
HOUR = hour_of(STAMP)
HUGE = 2**64 - 1  # the largest integer a JSON parser reads as an integer

# reason of a client report entry → (the quantities sent, one envelope each; the count stored, None: no row)
CLIENT_REPORTS: dict[str, tuple[list[Any], int | None]] = {
    "plain": ([3, 4], 7),
    "huge": ([HUGE], MAX_QUANTITY),
    "two huge": ([HUGE, HUGE], 2 * MAX_QUANTITY),
    "just the bound": ([MAX_QUANTITY], MAX_QUANTITY),
    "negative": ([-5], None),
    "huge negative": ([-(2**63) - 1], None),
    "fraction": ([2.5], None),
    "whole float": ([3.0], None),
    "string": (["7"], None),
    "boolean": ([True], None),
    "null": ([None], None),
    "zero": ([0], None),
    "list": ([[1]], None),
    "saturates at the column": ([HUGE, HUGE], MAX_COUNT),  # its row starts near the maximum
}
NEAR_THE_MAXIMUM = MAX_COUNT - 10
# status in a sessions aggregate → the value sent; the stored count of that status (and what "started" adds)
SESSIONS: dict[str, tuple[Any, int | None]] = {
    "exited": (HUGE, MAX_QUANTITY),
    "errored": (-1, None),
    "crashed": (1.5, None),
    "abnormal": ("2", None),
}


def _client_report(reason: str, quantity: Any) -> bytes:
    discarded = [{"reason": reason, "category": "error", "quantity": quantity}]
    payload = {"timestamp": STAMP, "discarded_events": discarded}
    return envelope(({"type": "client_report"}, json.dumps(payload).encode()))


def _sessions() -> bytes:
    bucket = {"started": STAMP, **{status: value for status, (value, _) in SESSIONS.items()}}
    payload = {"attrs": {"release": "app@1", "environment": "production"}, "aggregates": [bucket]}
    return envelope(({"type": "sessions"}, json.dumps(payload).encode()))


def _digest_like_the_server(stack: Stack) -> None:
    worker = DigestWorker(stack.services.digester, stack.services.inbox, poll_interval=0.02)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and stack.services.inbox.backlog() > 0:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert stack.services.inbox.backlog() == 0


def _stored(stack: Stack, table: Any, key: str) -> dict[str, tuple[Any, str]]:
    """key column → (count, the type the database holds it as)."""
    column = table.c[key]
    with stack.services.engine.connect() as connection:
        rows = connection.execute(select(column, table.c.count)).all()
        if connection.dialect.name == "sqlite":
            types = dict(connection.execute(text(f"SELECT {key}, typeof(count) FROM {table.name}")).all())
        else:
            types = {row[0]: type(row[1]).__name__ for row in rows}
    return {row[0]: (row[1], types[row[0]]) for row in rows}


def test_counts_are_clamped_and_nothing_is_quarantined(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    with stack.services.engine.begin() as connection:
        row = {"project_id": 1, "hour": HOUR, "reason": "saturates at the column", "category": "error"}
        connection.execute(insert(client_report_counts).values(**row, count=NEAR_THE_MAXIMUM))
    bodies = [_client_report(reason, q) for reason, (quantities, _) in CLIENT_REPORTS.items() for q in quantities]
    for body in [*bodies, _sessions(), _sessions()]:
        response = stack.client.post("/api/1/envelope/", content=body, headers={"X-Sentry-Auth": AUTH})
        assert response.status_code == 200, response.text

    with caplog.at_level(logging.WARNING, logger="stackwatch"):
        _digest_like_the_server(stack)

    reports = _stored(stack, client_report_counts, "reason")
    expected = {reason: count for reason, (_, count) in CLIENT_REPORTS.items() if count is not None}
    assert {reason: count for reason, (count, _) in reports.items()} == expected
    sessions = _stored(stack, session_counts, "status")
    expected = {status: 2 * count for status, (_, count) in SESSIONS.items() if count is not None}
    expected["started"] = expected["exited"]  # a bucket's ended sessions are also counted as started
    assert {status: count for status, (count, _) in sessions.items()} == expected
    assert {kind for _, kind in [*reports.values(), *sessions.values()]} == {"integer" if _sqlite(stack) else "int"}
    with stack.services.engine.connect() as connection:
        assert connection.execute(select(quarantine.c.id)).first() is None
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert any("not positive whole numbers ignored" in r.getMessage() for r in caplog.records)


def _sqlite(stack: Stack) -> bool:
    return stack.services.engine.dialect.name == "sqlite"
