"""A prune never blocks ingest: a real server answers envelopes while retention's writes wait (both backends).

Retention deletes in short transactions between digest batches; what matters for ingest is that it never waits
for them. Ingest writes only the inbox (on SQLite a file of its own, on PostgreSQL the ``inbox`` table) and reads
the main database (keys), so it must answer even while the locks a prune takes are held indefinitely. Here the
test holds them itself while a prune is due — on SQLite the main file's write lock (``BEGIN IMMEDIATE``, which
every prune transaction takes), on PostgreSQL the tables a prune writes, locked against writers — and sends
envelopes: each is answered while the lock is still held, the prune (and the digest) meanwhile deleted and stored
nothing, and once the lock goes the prune runs to its end and every envelope is digested.

Latency while a real prune runs is measured by ``bench/prune_ingest.py``; a ratio of two latencies is not asserted
here, since on a shared machine it measures the neighbours as much as Stackwatch.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import psycopg
import pytest
from sqlalchemy import func, select

from stackwatch.server.services import Services
from stackwatch.server.storage.schema import issues
from stackwatch.server.storage.seed import SeedOptions, seed_project
from tests.conftest import ServerFactory
from tests.support import AUTH, event_envelope, message_event

pytestmark = pytest.mark.slow

SEEDED = 2_000
SEEDED_ISSUES = 20
MAX_EVENTS = 100
SENT = 60
HELD_AT_LEAST = 2.5  # seconds: with a pass due every second, one has reached its first delete and waits
TIMEOUT = 15.0  # per request; the lock is held until every request is answered

Read = Callable[[], int]


@contextmanager
def prune_locks(database_url: str, slug: str, max_events: int) -> Iterator[Read]:
    """Lower ``slug``'s count limit, then at once hold what a prune's writes need; yields a read of its stored
    events as the lock holder sees them (nobody else can have changed them meanwhile)."""
    query = "SELECT coalesce(sum(i.stored_events), 0) FROM issues i JOIN projects p ON p.id = i.project_id "
    query += "WHERE p.slug = %s"
    if database_url.startswith("sqlite"):
        lite = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=30, isolation_level=None)
        try:
            lite.execute("BEGIN IMMEDIATE")
            lite.execute("UPDATE projects SET max_events = ? WHERE slug = ?", (max_events, slug))
            # A pass reads the projects, their issues and events before its first delete: it cannot get in between.
            lite.execute("COMMIT")
            lite.execute("BEGIN IMMEDIATE")
            yield lambda: int(lite.execute(query.replace("%s", "?"), (slug,)).fetchone()[0])
            lite.execute("ROLLBACK")
        finally:
            lite.close()
        return
    with psycopg.connect(database_url) as pg:
        pg.execute("UPDATE projects SET max_events = %s WHERE slug = %s", (max_events, slug))
        pg.commit()
        # Writers wait (a prune's deletes and counter updates, the digest's inserts); readers do not.
        pg.execute("LOCK TABLE events, issues, attachments IN EXCLUSIVE MODE")

        def read() -> int:
            row = pg.execute(query, (slug,)).fetchone()
            assert row is not None
            return int(row[0])

        yield read
        pg.rollback()


def backlog(base_url: str) -> int:
    answer = httpx.get(f"{base_url}/readyz", timeout=TIMEOUT)
    return int(answer.json()["inbox_backlog"])


def test_ingest_answers_while_a_prune_waits_for_the_main_database(
    start_server: ServerFactory, services: Services
) -> None:
    server = start_server(STACKWATCH_RETENTION_INTERVAL="1")
    seed_project(services.engine, "python", SeedOptions(SEEDED, SEEDED_ISSUES, days=2))
    time.sleep(1.5)  # a pass or two over the seeded project, under the server's limit: nothing to prune
    # What the prune may keep at most: the limit, or each issue's first and latest event if that is more.
    kept_at_most = max(MAX_EVENTS, 2 * (SEEDED_ISSUES + 1))

    answered: list[int] = []
    with prune_locks(server.database_url, "python", MAX_EVENTS) as stored:
        assert stored() == SEEDED
        held = time.monotonic()
        with httpx.Client(timeout=TIMEOUT) as client:
            for n in range(SENT):
                body = event_envelope(message_event("sent while a prune waits", extra={"n": n}))
                response = client.post(
                    f"{server.base_url}/api/1/envelope/", content=body, headers={"X-Sentry-Auth": AUTH}
                )
                answered.append(response.status_code)
                time.sleep(HELD_AT_LEAST / SENT)  # spread over the passes that come due meanwhile
        while time.monotonic() - held < HELD_AT_LEAST:
            time.sleep(0.1)
        assert answered == [200] * SENT  # every envelope answered, the lock still held
        assert stored() == SEEDED  # the prune deleted nothing meanwhile: it waits behind the lock
        assert backlog(server.base_url) == SENT  # and the digest stored nothing: accepted, in the inbox

    server.wait_digested(timeout=60)  # the lock gone: the digest takes the envelopes ...
    total, received = None, None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # ... and the prune runs to its end
        with services.engine.connect() as connection:
            of_project = select(func.sum(issues.c.stored_events)).where(issues.c.project_id == 1)
            total = connection.execute(of_project).scalar()
            sent = select(issues.c.event_count).where(issues.c.title == "sent while a prune waits")
            received = connection.execute(sent).scalar()
        if total is not None and total <= kept_at_most:
            break
        time.sleep(0.2)
    assert total is not None and total <= kept_at_most, total
    assert received == SENT  # nothing accepted was lost
