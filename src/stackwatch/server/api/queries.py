"""The reads behind the REST API (filtered, keyset-paginated issue lists, facets, series and event pages).

Also the one issue write the API and the dashboard share: a status change (``set_status``), recorded in the
issues' activity logs.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import HTTPException
from sqlalchemy import ColumnElement, Connection, and_, exists, or_, select, update

from stackwatch.server.digest.summary import stored_title
from stackwatch.server.search import Search, Searcher
from stackwatch.server.search import conditions as search_conditions
from stackwatch.server.storage import activity, snooze
from stackwatch.server.storage.assignment import assignee_emails
from stackwatch.server.storage.db import iso, now
from stackwatch.server.storage.payloads import PayloadUnreadable, read_payload
from stackwatch.server.storage.schema import (
    IMPACT_FACETS,
    events,
    grouping_hashes,
    issue_hourly,
    issue_impact,
    issue_tags,
    issues,
    projects,
    users,
)
from stackwatch.server.storage.upsert import clean

__all__ = [
    "SORT_COLUMNS",
    "IssueFilters",
    "decode_cursor",
    "encode_cursor",
    "event_data",
    "event_page",
    "event_projects",
    "find_event",
    "iso",
    "issue_by_id",
    "issue_page",
    "searcher",
    "set_status",
    "tag_facets",
]

SORT_COLUMNS = {
    "last_seen": issues.c.last_seen,
    "first_seen": issues.c.first_seen,
    "events": issues.c.event_count,
    "users": issues.c.user_count,
    "runs": issues.c.run_count,
}
TOP_TAG_VALUES = 10


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise HTTPException(400, "invalid cursor") from None
    if not isinstance(values, list) or len(values) != size or not all(_cursor_value(v) for v in values):
        raise HTTPException(400, "invalid cursor")
    return values


def _cursor_value(value: object) -> bool:
    """A number a cursor can hold: the sort columns are 64-bit integers and doubles, and an integer beyond 64 bits
    cannot even be compared with one on SQLite (``OverflowError``). orjson reads those as ``int`` still."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return isinstance(value, float)


@dataclass(frozen=True, slots=True)
class IssueFilters:
    """What an issue list shows: the single-field filters of the API's parameters and the dashboard's menus, and a
    parsed search (``server/search.py``) made by ``user_id`` (what ``assigned:me`` means; ``None``: nobody)."""

    status: str | None = None
    level: str | None = None
    environment: str | None = None
    release: str | None = None
    component: str | None = None
    workflow_id: str | None = None
    search: Search = field(default_factory=Search)
    user_id: int | None = None


def searcher(connection: Connection, found: Search, user_id: int | None) -> Searcher:
    """Who searches and the ids of the users the search names by email (a missing one: no such user)."""
    emails = found.emails()
    if not emails:
        return Searcher(user_id)
    rows = connection.execute(select(users.c.email, users.c.id).where(users.c.email.in_(sorted(emails)))).all()
    return Searcher(user_id, {str(email): int(user) for email, user in rows})


def _conditions(connection: Connection, project_id: int, filters: IssueFilters) -> list[ColumnElement[bool]]:
    """The conditions of the filters and the search, ANDed; :class:`SearchError` for a user that does not exist."""
    conditions: list[ColumnElement[bool]] = [issues.c.project_id == project_id]
    if filters.status:
        conditions.append(issues.c.status == filters.status)
    if filters.level:
        conditions.append(issues.c.level == filters.level)
    # Event attributes filter through the tag facets: an issue matches when any of its events had the value.
    for key in ("environment", "release", "component", "workflow_id"):
        value = getattr(filters, key)
        if value:
            conditions.append(
                exists().where(
                    issue_tags.c.issue_id == issues.c.id, issue_tags.c.key == key, issue_tags.c.value == value
                )
            )
    if filters.search.terms:
        conditions += search_conditions(filters.search, searcher(connection, filters.search, filters.user_id))
    return conditions


def issue_dict(row: Any, assignees: dict[int, str]) -> dict[str, Any]:
    """An issue as the API shows it; ``assignees``: the emails of the users it may be assigned to (by id)."""
    return {
        "id": row.id,
        "project_id": row.project_id,
        "title": row.title,
        "culprit": row.culprit,
        "type": row.type,
        "value": row.value,
        "level": row.level,
        "status": row.status,
        "platform": row.platform,
        "unhandled": bool(row.unhandled),
        "count": row.event_count,
        "stored_events": row.stored_events,
        "user_count": row.user_count,
        "run_count": row.run_count,
        "workflow_count": row.workflow_count,
        "tenant_count": row.tenant_count,
        "first_seen": iso(row.first_seen),
        "last_seen": iso(row.last_seen),
        "first_release": row.first_release,
        "last_release": row.last_release,
        "regressed_at": iso(row.regressed_at),
        "resolved_at": iso(row.resolved_at),
        "grouping_hash": row.grouping_hash,
        "grouping_version": row.grouping_version,
        "assignee": None if row.assignee_id is None else assignees.get(row.assignee_id),
        "ignore": snooze.shown(row),
    }


def issue_dicts(connection: Connection, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """``issue_dict`` of each row, their assignees' emails read in one query."""
    emails = assignee_emails(connection, {row.assignee_id for row in rows if row.assignee_id is not None})
    return [issue_dict(row, emails) for row in rows]


def issue_page(
    connection: Connection, project_id: int, filters: IssueFilters, sort: str, cursor: str | None, limit: int
) -> dict[str, Any]:
    """A page of the issues that match, in ``sort`` order; :class:`~stackwatch.server.search.SearchError` when
    the search names a user that does not exist, or ``assigned:me`` and nobody searches."""
    column = SORT_COLUMNS[sort]
    conditions = _conditions(connection, project_id, filters)
    if cursor:
        value, last_id = decode_cursor(cursor, 2)
        conditions.append(or_(column < value, and_(column == value, issues.c.id < last_id)))
    query = select(issues).where(*conditions).order_by(column.desc(), issues.c.id.desc()).limit(limit + 1)
    rows = connection.execute(query).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor([last._mapping[column.name], last.id])
    return {"data": issue_dicts(connection, rows), "next_cursor": next_cursor}


def issue_by_id(connection: Connection, issue_id: int) -> dict[str, Any]:
    row = connection.execute(select(issues).where(issues.c.id == issue_id)).first()
    if row is None:
        raise HTTPException(404, f"no issue {issue_id}")
    return issue_dicts(connection, [row])[0]


def set_status(
    connection: Connection,
    status: str,
    *conditions: ColumnElement[bool],
    by: activity.Actor,
    until: snooze.Snooze | None = None,
) -> int:
    """Set the status of the issues that match; ``resolved_at`` is the moment of resolving, else cleared.

    ``until``: with ``ignored``, the condition that brings them back (storage/snooze.py); any status change
    without one clears a snooze. Each issue whose status (or snooze) this changes gets a ``status`` entry in its
    activity log, by ``by``. Returns the number of issues that match. The caller holds the write transaction.
    """
    if until is not None and status != "ignored":
        raise ValueError("only an ignored issue can be snoozed")
    moment = now()
    # Locked until commit on PostgreSQL, so the statuses recorded as "from" are the ones the update replaces; in id
    # order, the order the digest locks issues in, so a bulk change and a batch never wait for each other in a cycle.
    query = select(issues.c.id, issues.c.status).where(*conditions).order_by(issues.c.id).with_for_update()
    found = connection.execute(query).all()
    if not found:
        return 0
    values: dict[str, Any] = {"status": status, "resolved_at": moment if status == "resolved" else None}
    values.update(snooze.cleared() if until is None else until.values())
    connection.execute(update(issues).where(issues.c.id.in_([row.id for row in found])).values(**values))
    data: dict[str, Any] = {"to": status}
    if until is not None:
        data["ignore"] = {until.kind: snooze.shown_value(until)}
    activity.record_all(
        connection,
        [
            activity.Activity(issue_id=row.id, kind="status", actor=by, data={"from": row.status, **data}, at=moment)
            for row in found
            if row.status != status or until is not None
        ],
    )
    return len(found)


def grouping_hashes_of(connection: Connection, issue_id: int) -> list[dict[str, Any]]:
    """The hashes that find an issue, oldest first."""
    query = (
        select(grouping_hashes.c.hash, grouping_hashes.c.version, grouping_hashes.c.first_seen)
        .where(grouping_hashes.c.issue_id == issue_id)
        .order_by(grouping_hashes.c.first_seen, grouping_hashes.c.hash)
    )
    return [{"hash": r.hash, "version": r.version, "first_seen": iso(r.first_seen)} for r in connection.execute(query)]


def tag_facets(connection: Connection, issue_id: int) -> list[dict[str, Any]]:
    """Each tag of the issue's events with its total and most frequent values, by key; the workflow run from
    issue_impact, which counts it (``schema.IMPACT_FACETS``)."""
    rows: list[tuple[str, str, int]] = [
        (str(key), str(value), int(count))
        for key, value, count in connection.execute(
            select(issue_tags.c.key, issue_tags.c.value, issue_tags.c.count)
            .where(issue_tags.c.issue_id == issue_id)
            .order_by(issue_tags.c.key, issue_tags.c.count.desc(), issue_tags.c.value)
        )
    ]
    for key, kind in IMPACT_FACETS.items():
        rows += [
            (key, str(value), int(count))
            for value, count in connection.execute(
                select(issue_impact.c.value, issue_impact.c.count)
                .where(issue_impact.c.issue_id == issue_id, issue_impact.c.kind == kind)
                .order_by(issue_impact.c.count.desc(), issue_impact.c.value)
            )
        ]
    facets: dict[str, dict[str, Any]] = {}
    for key, value, count in rows:
        facet = facets.setdefault(key, {"key": key, "total": 0, "values": []})
        facet["total"] += count
        if len(facet["values"]) < TOP_TAG_VALUES:
            facet["values"].append({"value": value, "count": count})
    return [facets[key] for key in sorted(facets)]


def hourly_series(connection: Connection, issue_id: int, hours: int) -> list[dict[str, Any]]:
    end = int(now() // 3600 * 3600)
    start = end - (hours - 1) * 3600
    counts = dict(
        connection.execute(
            select(issue_hourly.c.hour, issue_hourly.c.count).where(
                issue_hourly.c.issue_id == issue_id, issue_hourly.c.hour >= start
            )
        ).all()
    )
    return [{"hour": iso(hour), "count": counts.get(hour, 0)} for hour in range(start, end + 1, 3600)]


def find_event(connection: Connection, event_id: str, *conditions: ColumnElement[bool]) -> Any:
    """The stored event with this id (dashes and case ignored), within ``conditions``; ``None`` when there is none."""
    wanted = event_id.replace("-", "").lower()
    return connection.execute(select(events).where(events.c.event_id == wanted, *conditions).limit(1)).first()


def event_projects(connection: Connection, event_id: str, *conditions: ColumnElement[bool]) -> list[tuple[int, str]]:
    """(id, slug) of each project that stores an event with this id (dashes and case ignored), within ``conditions``.

    An event id is unique within a project only: two projects can each store one (the same SDK event sent with two
    DSNs, or an id chosen by a client).
    """
    wanted = event_id.replace("-", "").lower()
    query = (
        select(projects.c.id, projects.c.slug)
        .join(events, events.c.project_id == projects.c.id)
        .where(events.c.event_id == wanted, *conditions)
        .order_by(projects.c.slug)
    )
    return [(int(row.id), str(row.slug)) for row in connection.execute(query)]


def event_data(connection: Connection, row: Any) -> dict[str, Any]:
    """The normalized, scrubbed event a row stores, as the digest wrote it.

    Raises :class:`~stackwatch.server.storage.payloads.PayloadUnreadable` when the payload cannot be opened (its
    compression dictionary is missing): the callers say so instead of failing.
    """
    data = orjson.loads(read_payload(connection, row.payload))
    return data if isinstance(data, dict) else {}


def event_summary(row: Any, title: str) -> dict[str, Any]:
    return {
        "event_id": row.event_id,
        "issue_id": row.issue_id,
        "timestamp": iso(row.timestamp),
        "received_at": iso(row.received_at),
        "level": row.level,
        "title": title,
        "handled": bool(row.handled),
        "environment": row.environment,
        "release": row.release,
        "component": row.component,
        "workflow_id": row.workflow_id,
        "run_id": row.run_id,
        "step_id": row.step_id,
        "tenant": row.tenant,
        "user": row.user_key,
    }


def event_page(
    connection: Connection, condition: ColumnElement[bool], cursor: str | None, limit: int
) -> dict[str, Any]:
    columns = [*events.c, issues.c.title.label("issue_title")]
    conditions = [condition, issues.c.id == events.c.issue_id]
    if cursor:
        (last_id,) = decode_cursor(cursor, 1)
        conditions.append(events.c.id < last_id)
    rows = connection.execute(select(*columns).where(*conditions).order_by(events.c.id.desc()).limit(limit + 1)).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor([rows[-1].id])
    return {"data": [event_summary(row, event_title(connection, row)) for row in rows], "next_cursor": next_cursor}


def event_title(connection: Connection, row: Any) -> str:
    """An event's own title, from its payload (~50 µs: events keep no title column); its issue's when the payload
    cannot be opened (``row.issue_title``)."""
    try:
        return data_title(event_data(connection, row))
    except PayloadUnreadable:
        return str(row.issue_title)


def data_title(data: dict[str, Any]) -> str:
    """The title of the stored event ``data``, as the digest gave it to its issue."""
    return clean(stored_title(data), 500) or ""
