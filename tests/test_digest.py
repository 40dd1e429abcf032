"""The digest is idempotent on event_id: retries, crashes mid-batch and the SQLite inbox cursor."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from stackwatch.server.digest import store
from stackwatch.server.digest.items import hour_of
from stackwatch.server.digest.worker import Digester
from stackwatch.server.services import open_services
from stackwatch.server.storage.schema import (
    attachments,
    digest_state,
    events,
    issue_hourly,
    issue_impact,
    issue_tags,
    issues,
    project_hourly,
    session_counts,
)
from tests import support
from tests.conftest import Stack
from tests.support import AUTH, envelope, event_envelope, exception_event, message_event


def post(stack: Stack, body: bytes) -> None:
    response = stack.client.post("/api/1/envelope/", content=body, headers={"X-Sentry-Auth": AUTH})
    assert response.status_code == 200, response.text


def table_counts(stack: Stack) -> dict[str, int]:
    tables = (issues, events, issue_hourly, project_hourly, issue_tags, issue_impact, attachments, session_counts)
    return {table.name: support.count(stack, table) for table in tables}


def issue_totals(stack: Stack) -> list[tuple[int, int, int]]:
    """(event_count, events stored, run_count) per issue: the counters must match what is stored."""
    with stack.services.engine.connect() as connection:
        rows = connection.execute(select(issues.c.id, issues.c.event_count, issues.c.run_count)).all()
        per_issue: dict[int, int] = {}
        for issue_id in connection.execute(select(events.c.issue_id)).scalars():
            per_issue[issue_id] = per_issue.get(issue_id, 0) + 1
    return sorted((row.event_count, per_issue.get(row.id, 0), row.run_count) for row in rows)


def run_event(run: int) -> dict[str, Any]:
    return exception_event(tags={"run_id": f"run_{run}", "workflow_id": "wf"})


def test_same_envelope_twice_is_stored_once(stack: Stack) -> None:
    event = run_event(1)
    body = event_envelope(event)
    post(stack, body)
    post(stack, body)  # the SDK retried: same event id, same batch
    result = stack.services.digester.run_once()
    assert result is not None
    assert (result.events, result.duplicates) == (1, 1)
    post(stack, body)  # and again, in a later batch
    result = stack.services.digester.run_once()
    assert result is not None
    assert (result.events, result.duplicates) == (0, 1)
    assert support.count(stack, events) == 1
    assert issue_totals(stack) == [(1, 1, 1)]
    assert stack.api(f"/issues/{support.issue_of(stack, event['event_id'])}").json()["count"] == 1


def test_same_event_id_with_dashes_is_the_same_event(stack: Stack) -> None:
    event = run_event(1)
    post(stack, event_envelope(event))
    dashed = event["event_id"]
    dashed = f"{dashed[:8]}-{dashed[8:12]}-{dashed[12:16]}-{dashed[16:20]}-{dashed[20:]}".upper()
    post(stack, event_envelope({**event, "event_id": dashed}, {"event_id": dashed}))
    assert stack.digest() == 1
    assert support.count(stack, events) == 1


def test_same_event_id_in_two_projects_is_two_events(stack: Stack) -> None:
    event = run_event(1)
    post(stack, event_envelope(event))
    response = stack.client.post(
        "/api/2/envelope/", content=event_envelope(event), headers={"X-Sentry-Auth": "Sentry sentry_key=nodepublickey"}
    )
    assert response.status_code == 200
    assert stack.digest() == 2


def test_retries_of_an_id_in_two_projects_are_dropped_in_each(stack: Stack) -> None:
    """The duplicate check looks the ids up in every project at once (the (event_id, project_id) index) and must
    still tell the projects apart: a retry to one project is not the other project's event, nor the reverse."""
    event, other = run_event(1), run_event(2)
    node = {"X-Sentry-Auth": "Sentry sentry_key=nodepublickey"}
    post(stack, event_envelope(event))
    assert stack.digest() == 1
    # The same id: retried in project 1, new in project 2; and an id new in project 1 and retried later in 2.
    post(stack, event_envelope(event))
    post(stack, event_envelope(other))
    assert stack.client.post("/api/2/envelope/", content=event_envelope(event), headers=node).status_code == 200
    result = stack.services.digester.run_once()
    assert result is not None
    assert (result.events, result.duplicates) == (2, 1)
    for _ in range(2):
        post(stack, event_envelope(event))
        post(stack, event_envelope(other))
        assert stack.client.post("/api/2/envelope/", content=event_envelope(event), headers=node).status_code == 200
    result = stack.services.digester.run_once()
    assert result is not None
    assert (result.events, result.duplicates) == (0, 6)
    assert stack.client.post("/api/2/envelope/", content=event_envelope(other), headers=node).status_code == 200
    assert stack.digest() == 1
    with stack.services.engine.connect() as connection:
        stored = connection.execute(select(events.c.project_id, events.c.event_id).order_by(events.c.id)).all()
    assert stored == [(1, event["event_id"]), (1, other["event_id"]), (2, event["event_id"]), (2, other["event_id"])]


def test_retried_attachment_is_stored_once(stack: Stack) -> None:
    event = message_event("with attachment")
    body = envelope(
        ({"type": "event"}, orjson.dumps(event)),
        ({"type": "attachment", "filename": "dump.txt", "content_type": "text/plain"}, b"data\n" * 10),
        header={"event_id": event["event_id"]},
    )
    post(stack, body)
    post(stack, body)
    stack.digest()
    post(stack, body)
    stack.digest()
    assert support.count(stack, events) == 1
    assert support.count(stack, attachments) == 1


class Crash(RuntimeError):
    pass


def crash_on_tags(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the digest fail after it has written issues, impact, events and hourly counts of a batch."""
    real = store.upsert_add

    def failing(connection: Any, table: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if table is issue_tags:
            raise Crash("the process died here")
        return real(connection, table, *args, **kwargs)

    monkeypatch.setattr(store, "upsert_add", failing)


def test_crash_mid_batch_commits_nothing_and_a_rerun_stores_each_event_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = [run_event(n) for n in range(4)] + [message_event("hello")]
    for event in sent:
        post(stack, event_envelope(event))
    post(stack, envelope(({"type": "session"}, orjson.dumps({"sid": "s", "init": True, "status": "exited"}))))
    post(stack, event_envelope(sent[0]))  # a retry inside the same batch
    backlog = stack.services.inbox.backlog()
    assert backlog == 7
    before = table_counts(stack)

    with monkeypatch.context() as patch:
        crash_on_tags(patch)
        with pytest.raises(Crash):
            stack.services.digester.run_once()
        with pytest.raises(Crash):
            stack.services.digester.run_once()  # and it crashes again on the same rows
    assert table_counts(stack) == before
    assert stack.services.inbox.backlog() == backlog

    assert stack.digest() == len(sent)
    assert stack.services.inbox.backlog() == 0
    assert support.count(stack, events) == len(sent)
    for event in sent:
        assert support.count(stack, events, events.c.event_id == event["event_id"]) == 1
    assert issue_totals(stack) == [(1, 1, 0), (4, 4, 4)]
    with stack.services.engine.connect() as connection:
        sessions = dict(connection.execute(select(session_counts.c.status, session_counts.c.count)).all())
    assert sessions == {"started": 1, "exited": 1}
    assert stack.digest() == 0


def test_crash_in_a_later_batch_keeps_the_earlier_batches(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    digester = Digester(stack.services.engine, stack.services.inbox, batch_size=2)
    sent = [run_event(n) for n in range(5)]
    for event in sent:
        post(stack, event_envelope(event))
    assert digester.run_once() is not None  # rows 1-2 committed
    with monkeypatch.context() as patch:
        crash_on_tags(patch)
        with pytest.raises(Crash):
            digester.run_once()
    assert support.count(stack, events) == 2
    assert stack.services.inbox.backlog() == 3
    assert digester.drain() == 3
    assert support.count(stack, events) == 5
    assert issue_totals(stack) == [(5, 5, 5)]


def test_rows_left_behind_after_the_commit_are_not_digested_again(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between the digest's commit and the inbox clean-up must not double anything."""
    for n in range(3):
        post(stack, event_envelope(run_event(n)))
    with monkeypatch.context() as patch:
        patch.setattr(stack.services.inbox, "after_commit", lambda rows: None)
        assert stack.digest() == 3
    assert stack.services.inbox.backlog() == 0
    assert stack.services.digester.run_once() is None
    post(stack, event_envelope(run_event(9)))
    assert stack.digest() == 1
    assert support.count(stack, events) == 4
    assert issue_totals(stack) == [(4, 4, 4)]


def test_inbox_ids_are_not_reused_after_the_digest_deletes_rows(stack: Stack) -> None:
    """Regression: with reused ids, rows sent after a digest sat at or below the cursor and were never digested."""
    for round_number in range(3):
        for n in range(2):
            post(stack, event_envelope(run_event(round_number * 10 + n)))
        assert stack.services.inbox.backlog() == 2
        assert stack.digest() == 2
        assert stack.services.inbox.backlog() == 0
    assert support.count(stack, events) == 6


def test_digest_progress_survives_a_restart(stack: Stack) -> None:
    for n in range(3):
        post(stack, event_envelope(run_event(n)))
    assert stack.digest() == 3
    if stack.settings.is_sqlite:  # the SQLite layout keeps a cursor in the main database
        with stack.services.engine.connect() as connection:
            query = select(digest_state.c.value).where(digest_state.c.name == "inbox_cursor")
            cursor = connection.execute(query).scalar()
        assert cursor is not None and cursor >= 3
    post(stack, event_envelope(run_event(7)))

    reopened = open_services(stack.settings)
    try:
        assert reopened.inbox.backlog() == 1
        assert reopened.digester.drain() == 1
        assert reopened.digester.drain() == 0
    finally:
        reopened.close()
    assert support.count(stack, events) == 4


def test_a_bad_item_does_not_cost_the_rest_of_the_batch(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    good = run_event(1)
    post(stack, event_envelope(good))
    post(stack, event_envelope(run_event(2)))
    from stackwatch.server.digest import items

    real = items.normalize_event

    def sometimes(raw: dict[str, Any], context: Any) -> Any:
        if raw.get("tags", {}).get("run_id") == "run_2":
            raise ValueError("cannot read this one")
        return real(raw, context)

    monkeypatch.setattr(items, "normalize_event", sometimes)
    assert stack.digest() == 1
    assert support.count(stack, events) == 1
    assert stack.services.inbox.backlog() == 0


def project_hourly_rows(stack: Stack) -> dict[tuple[int, int, str], int]:
    with stack.services.engine.connect() as connection:
        rows = connection.execute(select(project_hourly.c.project_id, project_hourly.c.hour, project_hourly.c.level,
                                         project_hourly.c.count)).all()  # fmt: skip
    return {(p, h, level): n for p, h, level, n in rows}


def events_by_hour_and_level(stack: Stack) -> dict[tuple[int, int, str], int]:
    """What ``project_hourly`` must hold: the stored events, per project, hour of their timestamp and own level."""
    found: dict[tuple[int, int, str], int] = {}
    with stack.services.engine.connect() as connection:
        for p, stamp, level in connection.execute(select(events.c.project_id, events.c.timestamp, events.c.level)):
            key = (p, hour_of(stamp), level)
            found[key] = found.get(key, 0) + 1
    return found


def test_project_hourly_counts_each_event_under_its_own_level(stack: Stack) -> None:
    """One issue, events of several levels and hours, two projects, two batches and a retry: the per-project
    counts match the events, and add up per hour to the per-issue counts."""
    # The top of an hour a day back: within the retention window, or the digest would stamp the receive time.
    base = (time.time() // 3600 - 24) * 3600
    first = [
        exception_event("FlakyError", level=level, timestamp=base + offset)
        for level, offset in (("error", 10), ("warning", 20), ("warning", 3_700), ("fatal", 7_300))
    ]
    for event in first:
        post(stack, event_envelope(event))
    node = message_event("from node", level="debug", timestamp=base + 30)
    response = stack.client.post(
        "/api/2/envelope/", content=event_envelope(node), headers={"X-Sentry-Auth": "Sentry sentry_key=nodepublickey"}
    )
    assert response.status_code == 200
    assert stack.digest() == 5
    post(stack, event_envelope(first[1]))  # a retry: not counted twice
    post(stack, event_envelope(exception_event("FlakyError", level="warning", timestamp=base + 40)))
    assert stack.digest() == 1
    assert support.count(stack, issues) == 2  # FlakyError (all levels in one issue) and node's message
    counts = project_hourly_rows(stack)
    assert counts == events_by_hour_and_level(stack)
    hour = int(base)
    assert counts == {
        (1, hour, "error"): 1,
        (1, hour, "warning"): 2,
        (1, hour + 3_600, "warning"): 1,
        (1, hour + 7_200, "fatal"): 1,
        (2, hour, "debug"): 1,
    }
    with stack.services.engine.connect() as connection:
        per_issue = connection.execute(
            select(issues.c.project_id, issue_hourly.c.hour, func.sum(issue_hourly.c.count))
            .join(issues, issues.c.id == issue_hourly.c.issue_id)
            .group_by(issues.c.project_id, issue_hourly.c.hour)
        ).all()
    per_hour: dict[tuple[int, int], int] = {}
    for (p, h, _), n in counts.items():
        per_hour[(p, h)] = per_hour.get((p, h), 0) + n
    assert {(p, h): int(n) for p, h, n in per_issue} == per_hour
