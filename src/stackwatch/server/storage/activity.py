"""An issue's activity log (``schema.issue_activity``): what happened to it, who did it and when.

Every write that changes an issue in a way people follow records one entry here, in the same transaction as the
change itself, so the log cannot miss a change nor show one that was rolled back. The kinds and what their
``data`` holds are listed in ``KINDS`` (and in docs/dashboard.md); a new kind is one line there.

Who: ``user_id`` is the dashboard user or the API token's user (``None`` for Stackwatch itself and for a token
without a user), ``actor`` the name shown — the user's email, the token's name, or ``"Stackwatch"``. ``actor``
is kept as it was at the time, so the log still says who when the user is gone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select

from stackwatch.server.storage.schema import issue_activity

__all__ = [
    "KINDS",
    "MAX_PAGE",
    "STACKWATCH",
    "Activity",
    "Actor",
    "Entry",
    "list_activity",
    "recent_activity",
    "record_all",
]

# kind: what its ``data`` holds.
KINDS: Mapping[str, str] = {
    "status": '{"from": old status, "to": new status, "ignore": the snooze condition when one was set}: a person or'
    " token resolved, ignored (maybe until a condition, storage/snooze.py) or reopened the issue",
    "regression": '{"from": "resolved", "to": "unresolved", "event_id", "release"}: an event reopened the issue',
    "escalating": '{"from": "ignored", "to": "unresolved", "condition": the snooze condition met}: a snoozed issue'
    " came back by itself (events of a batch met the condition, or its time passed)",
    "assigned": '{"assignee": email or null, "previous": email or null}: assigned, reassigned or unassigned',
    "comment": '{"comment_id"}: a comment was added (issue_comments holds its text)',
}
MAX_PAGE = 500  # entries one read returns at most


@dataclass(frozen=True, slots=True)
class Actor:
    """Who does something: a user (``user_id``) or an API token without one (``user_id`` ``None``), by name."""

    user_id: int | None
    name: str


STACKWATCH = Actor(None, "Stackwatch")  # the digest and other work Stackwatch does by itself


@dataclass(frozen=True, slots=True, kw_only=True)
class Activity:
    """One entry to record."""

    issue_id: int
    kind: str
    actor: Actor
    data: Mapping[str, Any]
    at: float


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry as read back."""

    id: int
    issue_id: int
    kind: str
    user_id: int | None
    actor: str
    data: dict[str, Any]
    created_at: float


def _row(entry: Activity) -> dict[str, Any]:
    if entry.kind not in KINDS:
        raise ValueError(f"unknown activity kind {entry.kind!r}: add it to activity.KINDS")
    return {
        "issue_id": entry.issue_id,
        "kind": entry.kind,
        "user_id": entry.actor.user_id,
        "actor": entry.actor.name[:320],
        "data": orjson.dumps(dict(entry.data)).decode(),
        "created_at": entry.at,
    }


def record_all(connection: Connection, entries: Sequence[Activity]) -> None:
    """Record several entries in one statement (a bulk status change, a digest batch's regressions).

    The caller holds the write transaction of the change the entries describe.
    """
    if entries:
        connection.execute(insert(issue_activity), [_row(entry) for entry in entries])


def list_activity(connection: Connection, issue_id: int, *, after: int = 0, limit: int = MAX_PAGE) -> list[Entry]:
    """The issue's entries, oldest first, from the one after id ``after`` on, at most ``limit`` of them."""
    query = (
        select(issue_activity)
        .where(issue_activity.c.issue_id == issue_id, issue_activity.c.id > after)
        .order_by(issue_activity.c.id)
        .limit(min(max(limit, 1), MAX_PAGE))
    )
    return [_entry(row) for row in connection.execute(query)]


def recent_activity(connection: Connection, issue_id: int, limit: int) -> list[Entry]:
    """The issue's latest ``limit`` entries, oldest first (the issue page shows these)."""
    query = (
        select(issue_activity)
        .where(issue_activity.c.issue_id == issue_id)
        .order_by(issue_activity.c.id.desc())
        .limit(min(max(limit, 1), MAX_PAGE))
    )
    return [_entry(row) for row in reversed(connection.execute(query).all())]


def _entry(row: Any) -> Entry:
    data = orjson.loads(row.data)
    return Entry(int(row.id), int(row.issue_id), row.kind, row.user_id, row.actor, data, float(row.created_at))
