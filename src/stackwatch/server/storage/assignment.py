"""Who an issue is assigned to (``issues.assignee_id``), and who it may be assigned to.

An issue may be assigned to any user who may see its project: every administrator, and the project's members
(the same rule as the dashboard's, ``web/access.py``). A change records an ``assigned`` entry in the activity
log in the same transaction; assigning the person already assigned changes nothing and records nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, or_, select, update

from stackwatch.server.storage import activity
from stackwatch.server.storage.db import now
from stackwatch.server.storage.schema import issues, project_members, users

__all__ = ["AssignError", "Assignee", "assign", "assignable", "assignee_emails", "find_assignable", "reassign"]


class AssignError(ValueError):
    """An assignee that cannot be chosen; the message says why."""


@dataclass(frozen=True, slots=True)
class Assignee:
    id: int
    email: str


def _may_see(project_id: int) -> ColumnElement[bool]:
    members = select(project_members.c.user_id).where(project_members.c.project_id == project_id)
    return or_(users.c.is_admin.is_(True), users.c.id.in_(members))


def assignable(connection: Connection, project_id: int) -> list[Assignee]:
    """The users an issue of the project may be assigned to, by email."""
    query = select(users.c.id, users.c.email).where(_may_see(project_id)).order_by(users.c.email)
    return [Assignee(int(row.id), row.email) for row in connection.execute(query)]


def find_assignable(connection: Connection, project_id: int, email: str) -> Assignee:
    """The user with this email when an issue of the project may be assigned to them; else ``AssignError``."""
    wanted = email.replace("\x00", "").strip().lower()
    row = connection.execute(
        select(users.c.id, users.c.email).where(users.c.email == wanted, _may_see(project_id))
    ).first()
    if row is None:
        raise AssignError(
            f"{wanted or 'an empty email'} cannot be assigned: no user with this email may see the project "
            "(an administrator, or a member of the project)"
        )
    return Assignee(int(row.id), row.email)


def assignee_emails(connection: Connection, user_ids: set[int]) -> dict[int, str]:
    """The emails of these users; an assignee whose user is gone is missing (shown as nobody)."""
    if not user_ids:
        return {}
    rows = connection.execute(select(users.c.id, users.c.email).where(users.c.id.in_(user_ids)))
    return {int(row.id): str(row.email) for row in rows}


def assign(connection: Connection, issue_id: int, assignee: Assignee | None, *, by: activity.Actor) -> bool:
    """Assign the issue (``None``: to nobody) and record it; ``False`` when it was so assigned already.

    The caller holds the write transaction and has checked the assignee (``find_assignable``)."""
    current = connection.execute(select(issues.c.assignee_id).where(issues.c.id == issue_id).with_for_update())
    previous_id = current.scalar()
    new_id = None if assignee is None else assignee.id
    if previous_id == new_id:
        return False
    connection.execute(update(issues).where(issues.c.id == issue_id).values(assignee_id=new_id))
    previous_email = assignee_emails(connection, {previous_id}).get(previous_id) if previous_id is not None else None
    data = {"assignee": None if assignee is None else assignee.email, "previous": previous_email}
    activity.record_all(
        connection, [activity.Activity(issue_id=issue_id, kind="assigned", actor=by, data=data, at=now())]
    )
    return True


def reassign(
    connection: Connection, project_id: int, issue_id: int, email: str | None, *, by: activity.Actor
) -> Assignee | None:
    """Assign the issue of the project to the user with ``email`` (``None``: nobody).

    Returns the assignee to tell (by e-mail): the new one when the assignment changed and it was someone else who
    made it; else ``None``. ``AssignError`` when the email is not that of a user who may see the project.
    """
    assignee = None if email is None else find_assignable(connection, project_id, email)
    changed = assign(connection, issue_id, assignee, by=by)
    return assignee if changed and assignee is not None and assignee.id != by.user_id else None
