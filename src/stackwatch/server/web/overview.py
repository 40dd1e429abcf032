"""The projects overview: for each project the user may see, open issues, events in 24 hours and the last event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, func, select

from stackwatch.server.storage.schema import issues
from stackwatch.server.web.access import ProjectRef
from stackwatch.server.web.activity import Series, project_sparklines

__all__ = ["ProjectSummary", "summarize"]


@dataclass(frozen=True, slots=True)
class ProjectSummary:
    project: ProjectRef
    open_issues: int
    last_24h: Series  # events per hour, the current hour and the 23 before it
    last_seen: float | None

    @property
    def events_24h(self) -> int:
        return self.last_24h.total


def _by_project(connection: Connection, query: Select[tuple[int, Any]]) -> dict[int, Any]:
    return {int(row[0]): row[1] for row in connection.execute(query)}


def summarize(connection: Connection, projects: list[ProjectRef], now: float) -> list[ProjectSummary]:
    """One summary per project, in the given order; three grouped queries whatever the number of projects."""
    ids = [project.id for project in projects]
    if not ids:
        return []
    open_issues: dict[int, int] = _by_project(
        connection,
        select(issues.c.project_id, func.count())
        .where(issues.c.project_id.in_(ids), issues.c.status == "unresolved")
        .group_by(issues.c.project_id),
    )
    activity = project_sparklines(connection, ids, now)
    last_seen: dict[int, float | None] = _by_project(
        connection,
        select(issues.c.project_id, func.max(issues.c.last_seen))
        .where(issues.c.project_id.in_(ids))
        .group_by(issues.c.project_id),
    )
    return [
        ProjectSummary(
            project,
            int(open_issues.get(project.id, 0)),
            activity[project.id],
            last_seen.get(project.id),
        )
        for project in projects
    ]
