"""The projects overview: for each project the user may see, open issues, events in 24 hours and the last event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, func, select

from stackwatch.server.storage.schema import issue_hourly, issues
from stackwatch.server.web.access import ProjectRef

__all__ = ["ProjectSummary", "summarize"]

HOUR = 3600


@dataclass(frozen=True, slots=True)
class ProjectSummary:
    project: ProjectRef
    open_issues: int
    events_24h: int
    last_seen: float | None


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
    # The current hour's bucket and the 23 before it.
    since = int(now // HOUR) * HOUR - 23 * HOUR
    events: dict[int, int | None] = _by_project(
        connection,
        select(issues.c.project_id, func.sum(issue_hourly.c.count))
        .join(issue_hourly, issue_hourly.c.issue_id == issues.c.id)
        .where(issues.c.project_id.in_(ids), issue_hourly.c.hour >= since)
        .group_by(issues.c.project_id),
    )
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
            int(events.get(project.id) or 0),
            last_seen.get(project.id),
        )
        for project in projects
    ]
