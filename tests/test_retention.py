"""Retention: events deleted by age and thinned by count, with every count, impact and facet kept exact."""

from __future__ import annotations

import itertools
import random
import sqlite3
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, insert, select, update

from stackwatch.server.retention import DAY, RETENTION_LOCK, Limits, Retention, fair_targets, thin, tightened
from stackwatch.server.storage import accounts
from stackwatch.server.storage.schema import (
    attachments,
    compression_dicts,
    events,
    issue_hourly,
    issue_impact,
    issue_tags,
    issues,
)
from tests import support
from tests.conftest import Stack

# --- the choices, on their own ------------------------------------------------------------------------------------


def test_fair_targets_keep_small_issues_whole_and_cut_the_busy_ones_to_one_level() -> None:
    stored = {1: 900, 2: 300, 3: 5, 4: 35}
    targets = fair_targets(stored, {i: 1 for i in stored}, 200)
    assert sum(targets.values()) == 200
    assert targets[3] == 5 and targets[4] == 35  # under the level: kept whole
    assert targets[1] == targets[2] == 80


def test_fair_targets_never_go_below_the_floors() -> None:
    targets = fair_targets({1: 50, 2: 50}, {1: 30, 2: 2}, 40)
    assert targets[1] >= 30 and targets[2] >= 2
    assert fair_targets({1: 10}, {1: 1}, 100) == {1: 10}


def test_thin_takes_from_the_fullest_hours_and_keeps_the_newest_of_each() -> None:
    hour = 3600.0
    # 100 events in hour 0, 4 in hour 1, 10 in hour 2.
    candidates = [(i, 0.0 + i) for i in range(100)]
    candidates += [(100 + i, hour + i) for i in range(4)]
    candidates += [(200 + i, 2 * hour + i * 300) for i in range(10)]
    doomed = set(thin(candidates, 90))
    assert len(doomed) == 90
    kept = [event_id for event_id, _ in candidates if event_id not in doomed]
    assert {100, 101, 102, 103} <= set(kept)  # the rare hour is untouched
    busy = [event_id for event_id in kept if event_id < 100]
    assert len(busy) >= 5 and busy == list(range(100 - len(busy), 100))  # an hour keeps its newest
    assert any(200 <= event_id < 300 for event_id in kept)


def test_thin_removes_exactly_what_is_asked() -> None:
    rng = random.Random(7)
    candidates = sorted(((i, rng.uniform(0, 10 * 3600)) for i in range(500)), key=lambda c: c[1])
    for remove in (0, 1, 17, 250, 499, 500, 600):
        assert len(thin(candidates, remove)) == min(remove, 500)


def test_disk_pressure_tightens_the_count_limit() -> None:
    assert tightened(1000, 900, 0.5) == 1000
    assert tightened(1000, 900, 0.95) == int(900 * 0.8 / 0.95)
    assert tightened(0, 900, 1.0) == 720  # no count limit: one under pressure
    assert tightened(100, 900, 1.0) == 100


# --- against the real digest --------------------------------------------------------------------------------------


def set_limits(stack: Stack, **limits: int | None) -> None:
    with stack.services.engine.begin() as connection:
        assert accounts.update_project(connection, "python", **limits)


def retention(stack: Stack) -> Retention:
    found = stack.services.digester.retention
    assert found is not None
    return found


def sqlite_size(stack: Stack) -> int:
    with stack.services.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return Path(stack.settings.database_url.removeprefix("sqlite:///")).stat().st_size


class Workload:
    """Events of a busy issue, a medium one and rare ones, from a pool of users, in runs of a few events each;
    what was sent is kept."""

    def __init__(self) -> None:
        self.rng = random.Random(12)
        self.first: dict[str, str] = {}
        self.last: dict[str, str] = {}
        self.sent: Counter[str] = Counter()
        self.users: defaultdict[str, set[str]] = defaultdict(set)
        self.runs: defaultdict[str, set[str]] = defaultdict(set)

    def kind(self, i: int) -> str:
        if i % 40 == 7:
            return f"Rare{(i // 40) % 5}Error"
        return "BusyError" if self.rng.random() < 0.75 else "MediumError"

    def send(self, stack: Stack, n: int, offset: int, kind: str | None = None) -> list[str]:
        sent = []
        for i in range(offset, offset + n):
            name = kind or self.kind(i)
            # Users come back; a workflow run fails a few times (retries, steps) and is over.
            user, run = f"u{self.rng.randrange(12)}", f"run-{i // 4}"
            event = support.exception_event(kind=name, value=f"failed {i}", user={"id": user}, tags={"run_id": run})
            event_id = support.send_ok(stack, event)
            self.first.setdefault(name, event_id)
            self.last[name] = event_id
            self.sent[name] += 1
            self.users[name].add(user)
            self.runs[name].add(run)
            sent.append(event_id)
        return sent


def stored_ids(stack: Stack) -> set[str]:
    with stack.services.engine.connect() as connection:
        return set(connection.execute(select(events.c.event_id)).scalars())


def issue_rows(stack: Stack) -> dict[str, Any]:
    with stack.services.engine.connect() as connection:
        return {row.type: row for row in connection.execute(select(issues))}


def test_steady_state_under_a_count_limit(stack: Stack) -> None:
    n = 200
    set_limits(stack, max_events=n)
    work = Workload()
    sizes = []
    regression_first = ""
    for round_number in range(4):
        # As the worker does: a pass between batches (of 50 events here).
        for part in range(n // 50):
            offset = round_number * n + part * 50
            if round_number == 2 and part == 0:  # the medium issue is resolved, and regresses here
                medium = issue_rows(stack)["MediumError"].id
                auth = {"Authorization": f"Bearer {stack.token}"}
                change = stack.client.patch(f"/api/v1/issues/{medium}", json={"status": "resolved"}, headers=auth)
                assert change.is_success
                regression_first = work.send(stack, 1, 10_000, kind="MediumError")[0]
                work.send(stack, 49, offset)
            else:
                work.send(stack, 50, offset)
            stack.digest()
            retention(stack).run_pass()
        if stack.settings.is_sqlite:
            sizes.append(sqlite_size(stack))

    stored = stored_ids(stack)
    assert len(stored) <= n
    rows = issue_rows(stack)
    assert set(rows) == set(work.sent)
    with stack.services.engine.connect() as connection:
        runs_kept = connection.execute(select(func.count()).where(issue_impact.c.kind == "run")).scalar()
    assert runs_kept < sum(len(runs) for runs in work.runs.values()) / 2  # the runs of thinned events went
    for kind, row in rows.items():
        assert row.event_count == work.sent[kind]  # counts stay exact
        assert row.user_count == len(work.users[kind]) and row.run_count == len(work.runs[kind])
        assert work.first[kind] in stored and work.last[kind] in stored  # the first and the latest are kept
        assert row.stored_events >= 1
    assert regression_first in stored
    assert all(work.sent[kind] == rows[kind].stored_events for kind in work.sent if kind.startswith("Rare"))
    with stack.services.engine.connect() as connection:
        per_issue = dict(connection.execute(select(events.c.issue_id, func.count()).group_by(events.c.issue_id)).all())
        assert per_issue == {row.id: row.stored_events for row in rows.values()}  # the counters match the rows
        assert connection.execute(select(func.sum(issue_hourly.c.count))).scalar() == 4 * n
        levels = connection.execute(select(func.sum(issue_tags.c.count)).where(issue_tags.c.key == "level")).scalar()
        assert levels == 4 * n
    busy = stack.api(f"/issues/{rows['BusyError'].id}").json()
    assert busy["count"] == work.sent["BusyError"] and busy["stored_events"] == rows["BusyError"].stored_events
    assert busy["stored_events"] < busy["count"]
    body = stack.api("/projects").json()
    python = next(p for p in body if p["slug"] == "python")
    assert python["stored_events"] == len(stored) and python["stored_bytes"] > 0
    if sizes:  # the database file stops growing once the limit is reached
        assert sizes[-1] <= 1.3 * sizes[0], sizes


def shift_back(stack: Stack, event_ids: list[str], seconds: float) -> None:
    """Make these events (and what the digest derived from them) look as if they arrived ``seconds`` ago."""
    with stack.services.engine.begin() as connection:
        connection.execute(
            update(events)
            .where(events.c.event_id.in_(event_ids))
            .values(received_at=events.c.received_at - seconds, timestamp=events.c.timestamp - seconds)
        )
        connection.execute(update(issue_impact).values(last_seen=issue_impact.c.last_seen - seconds))
        connection.execute(update(issue_tags).values(last_seen=issue_tags.c.last_seen - seconds))
        connection.execute(
            update(issues).values(first_seen=issues.c.first_seen - seconds, last_seen=issues.c.last_seen - seconds)
        )


def test_events_older_than_the_age_limit_go(stack: Stack) -> None:
    set_limits(stack, retention_days=10)
    old_a = [support.send_ok(stack, support.exception_event(kind="OldError", user={"id": "gone"})) for _ in range(3)]
    envelope_event = support.exception_event(kind="MixedError", user={"id": "gone"})
    body = support.envelope(
        ({"type": "event"}, orjson.dumps(envelope_event)),
        ({"type": "attachment", "filename": "run.log", "content_type": "text/plain"}, b"log of an old run"),
        header={"event_id": envelope_event["event_id"]},
    )
    response = stack.client.post("/api/1/envelope/", content=body, headers={"X-Sentry-Auth": support.AUTH})
    assert response.status_code == 200
    old_c = [envelope_event["event_id"]]
    stack.digest()
    shift_back(stack, old_a + old_c, 20 * DAY)  # they arrived twenty days ago
    new_c = [support.send_ok(stack, support.exception_event(kind="MixedError", user={"id": "new"})) for _ in range(2)]
    new_b = [support.send_ok(stack, support.exception_event(kind="FreshError")) for _ in range(2)]
    stack.digest()

    clock = time.time() + 60
    report = Retention(stack.services.engine, Limits(90, 0), clock=lambda: clock).run_pass()

    assert stored_ids(stack) == {*new_c, *new_b}
    rows = issue_rows(stack)
    assert set(rows) == {"MixedError", "FreshError"}  # the issue with nothing left went
    mixed = rows["MixedError"]
    assert mixed.event_count == 3 and mixed.stored_events == 2  # the count of all time; what is stored
    assert mixed.user_count == 1  # "gone" was not seen within the retention period
    with stack.services.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(attachments)).scalar() == 0
        values = connection.execute(select(issue_impact.c.value).where(issue_impact.c.kind == "user")).scalars()
        assert set(values) == {"id:new"}
    assert report.events == 4 and report.issues == 1 and report.attachments == 1


def test_a_project_limit_overrides_the_server_default(stack: Stack) -> None:
    sent = [support.send_ok(stack, support.exception_event(kind="OnlyError", value=str(i))) for i in range(30)]
    stack.digest()
    retention(stack).run_pass()
    assert len(stored_ids(stack)) == 30  # the server default (100,000) is far away
    set_limits(stack, max_events=10)
    retention(stack).run_pass()
    kept = stored_ids(stack)
    assert len(kept) == 10 and sent[0] in kept and sent[-1] in kept


def test_the_worker_prunes_between_batches(stack: Stack) -> None:
    """The digest worker's housekeeping runs the pass (here due at once: no pass has run yet)."""
    set_limits(stack, max_events=5)
    for i in range(20):
        support.send_ok(stack, support.exception_event(value=str(i)))
    stack.digest()
    stack.services.digester.tidy(idle=True)
    assert len(stored_ids(stack)) == 5


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_prune_keeps_the_write_lock_short(stack: Stack) -> None:
    """Each unit of a pass is its own transaction: between two, another writer gets the database."""
    set_limits(stack, max_events=1)
    for i in range(30):
        support.send_ok(stack, support.exception_event(value=str(i)))
    stack.digest()
    pruner = Retention(stack.services.engine, Limits(90, 1), chunk=5)
    steps = pruner.units()  # one unit at a time
    next(steps)
    path = stack.settings.database_url.removeprefix("sqlite:///")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)  # a writer between two units never waits
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE projects SET name = name")
        other.execute("COMMIT")
    finally:
        other.close()
    for _ in steps:
        pass
    assert len(stored_ids(stack)) == 2  # the first (pinned) and the latest


def test_disk_pressure_thins_a_project_without_a_count_limit(stack: Stack) -> None:
    set_limits(stack, max_events=0)
    sent = [support.send_ok(stack, support.exception_event(value=str(i))) for i in range(40)]
    stack.digest()
    Retention(stack.services.engine, Limits(90, 0)).run_pass()
    assert len(stored_ids(stack)) == 40  # no pressure, no count limit: nothing goes
    Retention(stack.services.engine, Limits(90, 0), pressure=lambda: 1.0).run_pass()
    kept = stored_ids(stack)
    assert len(kept) == 32 and sent[0] in kept and sent[-1] in kept  # 80 % of the limit is aimed at


def test_dictionaries_no_stored_event_can_need_go(stack: Stack) -> None:
    """A dictionary goes once the next one is older than the age limit: what it compressed is older still."""
    set_limits(stack, retention_days=10)
    cutoff = time.time() - 10 * DAY
    with stack.services.engine.begin() as connection:
        for dict_id, created in ((1, cutoff - 2 * DAY), (2, cutoff - DAY), (3, time.time())):
            connection.execute(
                insert(compression_dicts).values(
                    id=dict_id, project_id=1, created_at=created, data=b"x", samples=1, event_count=1, ratio=0.5
                )
            )
    retention(stack).run_pass()
    with stack.services.engine.connect() as connection:
        assert list(connection.execute(select(compression_dicts.c.id).order_by(compression_dicts.c.id)).scalars()) == [
            2,
            3,
        ]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_second_postgresql_worker_leaves_the_pass_to_the_first(stack: Stack) -> None:
    """While another worker's pass holds the lock, a pass ends at once instead of retrying the same rows."""
    set_limits(stack, max_events=2)
    for i in range(10):
        support.send_ok(stack, support.exception_event(value=str(i)))
    stack.digest()
    with stack.services.engine.connect() as other:
        other.exec_driver_sql(f"SELECT pg_advisory_lock({RETENTION_LOCK})")
        try:
            report = Retention(stack.services.engine, Limits(90, 2)).run_pass()
        finally:
            other.exec_driver_sql(f"SELECT pg_advisory_unlock({RETENTION_LOCK})")
    assert report.events == 0 and len(stored_ids(stack)) == 10
    assert Retention(stack.services.engine, Limits(90, 2)).run_pass().events == 8


def test_many_old_issues_go_a_few_per_transaction(stack: Stack) -> None:
    set_limits(stack, retention_days=10)
    old = [support.send_ok(stack, support.exception_event(kind=f"Old{i}Error")) for i in range(7)]
    kept = support.send_ok(stack, support.exception_event(kind="NewError"))
    stack.digest()
    shift_back(stack, old, 20 * DAY)
    with stack.services.engine.begin() as connection:  # shift_back moved every issue: the new one is recent again
        connection.execute(
            update(issues).where(issues.c.type == "NewError").values(first_seen=time.time(), last_seen=time.time())
        )
    pruner = Retention(stack.services.engine, Limits(90, 0), chunk=2)
    counts = [len(issue_rows(stack))]
    for _ in pruner.units():  # each unit is one committed transaction
        counts.append(len(issue_rows(stack)))
    assert counts[0] == 8 and counts[-1] == 1
    assert max(before - after for before, after in itertools.pairwise(counts)) == 2  # two at a time
    assert pruner.report.issues == 7 and set(issue_rows(stack)) == {"NewError"} and stored_ids(stack) == {kept}
