"""Who sees what on the dashboard: administrators every project, other users the projects they are members of."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Select, select

from stackwatch.server.storage.schema import project_members, projects

__all__ = ["ProjectRef", "User", "can_see_project", "visible_project", "visible_projects"]


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    is_admin: bool


@dataclass(frozen=True, slots=True)
class ProjectRef:
    id: int
    slug: str
    name: str


def _visible(user: User) -> Select[tuple[int, str, str]]:
    query = select(projects.c.id, projects.c.slug, projects.c.name)
    if not user.is_admin:
        query = query.where(
            projects.c.id.in_(select(project_members.c.project_id).where(project_members.c.user_id == user.id))
        )
    return query


def visible_projects(connection: Connection, user: User) -> list[ProjectRef]:
    """The projects the user may see, by name."""
    rows = connection.execute(_visible(user).order_by(projects.c.name, projects.c.id))
    return [ProjectRef(int(row.id), row.slug, row.name) for row in rows]


def can_see_project(connection: Connection, user: User, project_id: int) -> bool:
    return connection.execute(_visible(user).where(projects.c.id == project_id)).first() is not None


def visible_project(connection: Connection, user: User, slug: str) -> ProjectRef | None:
    """The project with this slug when the user may see it; ``None`` alike for a missing and a hidden project, to
    reveal nothing."""
    if "\x00" in slug:  # PostgreSQL refuses NUL characters even as parameters
        return None
    found = connection.execute(_visible(user).where(projects.c.slug == slug)).first()
    return None if found is None else ProjectRef(int(found.id), found.slug, found.name)
