"""PostgreSQL: events partitioned by week, partitions made ahead and dropped past retention, events stored once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, column, func, insert, inspect, select, table, text

from stackwatch.server.digest.worker import Digester
from stackwatch.server.storage import accounts, db, partitions
from stackwatch.server.storage.partitions import DAY, PERIOD, partition_name, period_start
from stackwatch.server.storage.schema import digest_state, events, issue_hourly, issues, projects
from tests import support
from tests.conftest import Stack
from tests.support import AUTH, event_envelope, exception_event
from tests.test_migrations import differences, upgrade

POSTGRES_ONLY = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def post(stack: Stack, body: bytes) -> None:
    response = stack.client.post("/api/1/envelope/", content=body, headers={"X-Sentry-Auth": AUTH})
    assert response.status_code == 200, response.text


def where_events_are(engine: Engine) -> dict[str, list[str]]:
    """Partition name → the event ids it holds."""
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT tableoid::regclass::text, event_id FROM events ORDER BY event_id"))
        found: dict[str, list[str]] = {}
        for name, event_id in rows:
            found.setdefault(name, []).append(event_id)
    return found


def names(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return {p.name for p in partitions.partitions(connection)}


def digest_received_at(stack: Stack, received_at: float, **fields: Any) -> str:
    """Send one event through ingest and digest it as though the server had received it at ``received_at``."""
    event = exception_event(**fields)
    post(stack, event_envelope(event))
    with stack.services.engine.begin() as connection:
        connection.execute(text("UPDATE inbox SET received_at = :at"), {"at": received_at})
    assert stack.digest() == 1
    return str(event["event_id"])


@POSTGRES_ONLY
def test_migrate_partitions_events_ahead_with_a_default(services: Any) -> None:
    this_week = period_start(time.time())
    with services.engine.connect() as connection:
        assert partitions.is_partitioned(connection)
        made = partitions.partitions(connection)
    assert [(p.lower, p.upper) for p in made if p.lower is not None] == [
        (this_week + n * PERIOD, this_week + (n + 1) * PERIOD) for n in range(partitions.AHEAD + 1)
    ]
    assert [p.name for p in made if p.lower is None] == [partitions.DEFAULT_PARTITION]
    assert partition_name(this_week) in {p.name for p in made}
    assert period_start(this_week) == this_week and time.gmtime(this_week).tm_wday == 0  # a Monday, 00:00 UTC


@POSTGRES_ONLY
def test_digested_events_land_in_their_weeks_partition(stack: Stack) -> None:
    sent = [exception_event(value=f"value {n}") for n in range(3)]
    for event in sent:
        post(stack, event_envelope(event))
    assert stack.digest() == 3
    assert where_events_are(stack.services.engine) == {
        partition_name(period_start(time.time())): sorted(event["event_id"] for event in sent)
    }
    assert stack.api(f"/events/{sent[0]['event_id']}").status_code == 200


@POSTGRES_ONLY
def test_old_partitions_are_dropped_and_the_counts_stay(stack: Stack) -> None:
    engine, now = stack.services.engine, time.time()
    long_ago = now - 100 * DAY
    with engine.begin() as connection:  # the worker, as it ran 100 days ago
        created, dropped = partitions.maintain(connection, long_ago, keep_days=90)
    assert (created, dropped) == (partitions.AHEAD + 1, 0)
    old = digest_received_at(stack, long_ago, tags={"run_id": "old"})
    recent = digest_received_at(stack, now - DAY, tags={"run_id": "recent"})
    where = where_events_are(engine)
    assert where[partition_name(period_start(long_ago))] == [old]
    with engine.connect() as connection:
        issue_before = connection.execute(select(issues.c.id, issues.c.event_count)).all()
        hourly_before = connection.execute(select(func.sum(issue_hourly.c.count))).scalar()
        expired = {p.name for p in partitions.partitions(connection) if p.upper and p.upper <= now - 90 * DAY}
    assert partition_name(period_start(long_ago)) in expired

    with engine.begin() as connection:
        created, dropped = partitions.maintain(connection, now, keep_days=90)
    assert dropped == len(expired) and created == 0  # this week and the next were made by the migration
    assert not expired & names(engine)
    assert support.count(stack, events) == 1
    assert [e for ids in where_events_are(engine).values() for e in ids] == [recent]
    with engine.connect() as connection:  # issues and their counters outlive the events they count
        assert connection.execute(select(issues.c.id, issues.c.event_count)).all() == issue_before
        assert connection.execute(select(func.sum(issue_hourly.c.count))).scalar() == hourly_before
        # and what is stored is counted without the dropped week's event
        assert connection.execute(select(func.sum(issues.c.stored_events))).scalar() == 1
    with engine.begin() as connection:
        assert partitions.maintain(connection, now, keep_days=90) == (0, 0)


@POSTGRES_ONLY
def test_a_partition_made_later_takes_its_rows_from_the_default_partition(stack: Stack) -> None:
    engine, now = stack.services.engine, time.time()
    later = now + 60 * DAY  # beyond the weeks made ahead: a clock far off
    early = now - 400 * DAY  # before any partition: a seeder's past data
    stray = digest_received_at(stack, later)
    ancient = digest_received_at(stack, early)
    assert where_events_are(engine) == {partitions.DEFAULT_PARTITION: sorted([stray, ancient])}
    with engine.begin() as connection:
        created, dropped = partitions.maintain(connection, later, keep_days=90)
    assert (created, dropped) == (partitions.AHEAD + 1, 0)
    assert where_events_are(engine) == {partition_name(period_start(later)): [stray]}  # the ancient one expired
    assert stack.api(f"/events/{stray}").status_code == 200
    with engine.connect() as connection:  # the moved partition got the parent's indexes and keys
        indexes = connection.execute(
            text("SELECT count(*) FROM pg_indexes WHERE tablename = :name"),
            {"name": partition_name(period_start(later))},
        ).scalar()
        keys = connection.execute(
            text("SELECT count(*) FROM pg_constraint WHERE conrelid = to_regclass(:name) AND contype IN ('p', 'f')"),
            {"name": partition_name(period_start(later))},
        ).scalar()
    assert (indexes, keys) == (len(events.indexes) + 2, 3)  # + the primary key's and the (project, event id)'s


@POSTGRES_ONLY
def test_the_worker_remakes_missing_partitions(stack: Stack) -> None:
    engine = stack.services.engine
    next_week = partition_name(period_start(time.time()) + PERIOD)
    with engine.begin() as connection:
        connection.exec_driver_sql(f'DROP TABLE "{next_week}"')
    digester = stack.services.digester  # its first housekeeping looks after the partitions
    digester.tidy(idle=True)
    assert next_week in names(engine)
    assert digester.maintain_partitions(time.time()) == (0, 0)


def test_sqlite_keeps_a_plain_events_table(stack: Stack) -> None:
    with stack.services.engine.begin() as connection:
        assert partitions.is_partitioned(connection) is (connection.dialect.name == "postgresql")
        if connection.dialect.name == "sqlite":
            assert partitions.maintain(connection, time.time(), 90) == (0, 0)
            assert stack.services.digester.maintain_partitions(time.time()) == (0, 0)


def test_keep_days_is_the_longest_retention_of_any_project(stack: Stack) -> None:
    with stack.services.engine.connect() as connection:
        assert partitions.keep_days(connection, 45.0) == 45.0  # no project has its own
    with stack.services.engine.begin() as connection:
        assert accounts.update_project(connection, "python", retention_days=200)
        assert partitions.keep_days(connection, 45.0) == 200.0
        assert accounts.update_project(connection, "python", retention_days=7)
        assert partitions.keep_days(connection, 45.0) == 45.0  # "node" keeps the server's 45


@POSTGRES_ONLY
def test_without_retention_the_worker_drops_no_partition(stack: Stack) -> None:
    engine, now = stack.services.engine, time.time()
    with engine.begin() as connection:
        partitions.maintain(connection, now - 400 * DAY, keep_days=90)  # weeks made long ago
    digester = Digester(engine, stack.services.inbox)  # no Retention: nothing is deleted, partitions neither
    assert digester.maintain_partitions(now)[1] == 0
    assert partition_name(period_start(now - 400 * DAY)) in names(engine)


@pytest.fixture
def holder(stack: Stack) -> Iterator[Connection]:
    """A transaction that holds the digest's batch counter row: a batch waits for it just before its commit."""
    with stack.services.engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(
            select(digest_state.c.value)
            .where(digest_state.c.name == "stackwatch_digest_batches_total")
            .with_for_update()
        ).one()
        try:
            yield connection
        finally:
            if transaction.is_active:
                transaction.rollback()


def waiting(engine: Engine) -> int:
    with engine.connect() as connection:
        query = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        return int(connection.execute(text(query)).scalar_one())


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@POSTGRES_ONLY
def test_two_workers_digesting_one_event_id_at_once_store_it_once(request: pytest.FixtureRequest, stack: Stack) -> None:
    """A retried send in two inbox rows, each taken by one worker: the second waits for the first's commit."""
    engine = stack.services.engine
    post(stack, event_envelope(exception_event()))
    assert stack.digest() == 1  # the counter row exists from now on
    holder = request.getfixturevalue("holder")
    event = exception_event(value="sent twice")
    body = event_envelope(event)
    post(stack, body)
    post(stack, body)
    results: list[Any] = []
    threads = []
    for n in (1, 2):
        digester = Digester(engine, stack.services.inbox)
        thread = threading.Thread(target=lambda d=digester: results.append(d.run_once(1)), daemon=True)
        thread.start()
        threads.append(thread)
        # The first has stored the event and waits at its counters; the second waits on the first (or, without
        # the event id locks, has stored it too and waits at its counters).
        wait_for(lambda n=n: waiting(engine) == n or len(results) == n, f"worker {n} did not get to its wait")
    holder.commit()
    for thread in threads:
        thread.join(30)
    assert sorted((r.events, r.duplicates) for r in results) == [(0, 1), (1, 0)]
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).where(events.c.event_id == event["event_id"])).scalar() == 1


@POSTGRES_ONLY
def test_the_migration_partitions_a_populated_table(engine: Engine) -> None:
    upgrade(engine, "0008")
    now = time.time()
    moments = [now - 300 * DAY, now - 20 * DAY, now - 20 * DAY + 1, now, 946_684_800.0]  # and 2000-01-01
    with engine.begin() as connection:
        connection.execute(insert(projects).values(slug="p", name="P", collect_ips=True, created_at=1.0))
        connection.execute(
            insert(issues).values(
                id=1, project_id=1, grouping_hash="h", grouping_version=1, title="t", type="E", level="error",
                first_seen=1.0, last_seen=1.0,
            )
        )  # fmt: skip
        rows: list[dict[str, Any]] = [
            {"project_id": 1, "issue_id": 1, "event_id": f"{n:032x}", "timestamp": at, "received_at": at,
             "level": "error", "title": "t", "handled": True, "payload": bytes([n])}
            for n, at in enumerate(moments)
        ]  # fmt: skip
        # The table as revision 0008 has it (a title column, which 0012 drops).
        planted = table("events", column("id"), *(column(name) for name in rows[0]))
        ids = [connection.execute(insert(planted).values(row).returning(planted.c.id)).scalar_one() for row in rows]
    upgrade(engine, "head")
    assert differences(engine) == []
    expected: dict[str, list[str]] = {}
    for row in rows:
        expected.setdefault(partition_name(period_start(row["received_at"])), []).append(row["event_id"])
    assert where_events_are(engine) == expected
    with engine.begin() as connection:
        stored = connection.execute(select(events.c.id, events.c.payload).order_by(events.c.id)).all()
        assert stored == [(id_, row["payload"]) for id_, row in zip(ids, rows, strict=True)]
        new = {**rows[0], "event_id": "f" * 32, "received_at": now}
        del new["title"]
        # The old table's sequence goes on; a new one would start again at 1, beside the id 1 kept.
        assert connection.execute(insert(events).values(new).returning(events.c.id)).scalar_one() == max(ids) + 1
    assert {partition_name(period_start(now) + n * PERIOD) for n in range(partitions.AHEAD + 1)} <= names(engine)


@POSTGRES_ONLY
def test_the_migration_down_gives_back_the_plain_table(engine: Engine) -> None:
    db.migrate(engine)
    with engine.begin() as connection:
        connection.execute(insert(projects).values(slug="p", name="P", collect_ips=True, created_at=1.0))
    from alembic import command
    from alembic.config import Config

    from tests.test_migrations import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection, connection.begin():
        config.attributes["connection"] = connection
        command.downgrade(config, "0010")
    with engine.connect() as connection:
        assert not partitions.is_partitioned(connection)
        unique = inspect(connection).get_unique_constraints("events")
    # Revision 0010's table: the uniqueness the partitioned table held as a plain index is a constraint again.
    assert [u["column_names"] for u in unique] == [["project_id", "event_id"]]
    with engine.connect() as connection, connection.begin():
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    assert differences(engine) == []


@POSTGRES_ONLY
def test_a_drop_waiting_on_a_long_query_is_postponed(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    engine, now = stack.services.engine, time.time()
    with engine.begin() as connection:
        partitions.maintain(connection, now - 100 * DAY, keep_days=90)
    with engine.connect() as reader, reader.begin():
        reader.execute(select(func.count()).select_from(events)).scalar()  # holds its lock on every partition
        with engine.begin() as connection:
            assert partitions.maintain(connection, now, keep_days=90) == (0, 0)
    assert "postponed, the events table was busy" in caplog.text
    with engine.begin() as connection:
        created, dropped = partitions.maintain(connection, now, keep_days=90)
    assert created == 0 and dropped > 0
