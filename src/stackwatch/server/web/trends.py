"""Project trends, ``/projects/{slug}/trends``: events per hour by level, the fastest-growing issues, new issues.

Everything is read from the digest's hourly counts (bucketed by the events' own timestamps) and the issues table,
never from the events: ``project_hourly`` (per project, hour and the event's own level: a few rows per hour, so
the chart reads at most 5 × 168 rows) for events per hour by level, ``issue_hourly`` of the issues seen in the last
24 hours for the fastest-growing ones. Hours and days are UTC; every bucket is shown, empty ones as 0. (Hours
digested before migration 0005 were backfilled under their issue's level; see that migration.)
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from sqlalchemy import Connection, case, func, select
from starlette.requests import Request
from starlette.responses import Response

from stackwatch.server.storage.db import now
from stackwatch.server.storage.schema import LEVELS, issue_hourly, issues, project_hourly
from stackwatch.server.web.charts import chart
from stackwatch.server.web.context import WebRoute, web
from stackwatch.server.web.issues import project_for_page

__all__ = ["GROWING_LIMIT", "NEW_ISSUE_DAYS", "RANGES", "build_trends_router"]

HOUR, DAY = 3600, 86400
RANGES = {"24h": 24, "7d": 7 * 24}  # hours shown by each ``?range=``
GROWING_LIMIT = 10
NEW_ISSUE_DAYS = 30


def _hour_label(hour: int, hours: int) -> str:
    stamp = datetime.fromtimestamp(hour, UTC)
    return stamp.strftime("%H:%M") if hours <= 24 else stamp.strftime("%Y-%m-%d %H:%M")


def _by_level(connection: Connection, project_id: int, end: int, hours: int) -> dict[str, Any]:
    """Events per hour and (their own) level for the ``hours`` hours up to and including the current one."""
    start = end - (hours - 1) * HOUR
    rows = connection.execute(
        select(project_hourly.c.hour, project_hourly.c.level, project_hourly.c.count).where(
            project_hourly.c.project_id == project_id, project_hourly.c.hour >= start
        )
    ).all()
    counts = {(int(hour), level): int(n) for hour, level, n in rows}
    x = list(range(start, end + 1, HOUR))
    series = [(level, [counts.get((hour, level), 0) for hour in x]) for level in LEVELS]
    table = []
    for i, hour in enumerate(x):
        counts_at = [values[i] for _, values in series]
        table.append({"hour": hour, "label": _hour_label(hour, hours), "counts": counts_at, "total": sum(counts_at)})
    return {
        "chart": chart(x, series, kind="stacked", step=HOUR),
        "levels": LEVELS,
        "rows": table,
        "totals": [sum(values) for _, values in series],
        "total": sum(sum(values) for _, values in series),
    }


def _growing(connection: Connection, project_id: int, end: int) -> list[dict[str, Any]]:
    """The issues whose events grew most: the last 24 hours (this hour included) against the 24 before."""
    middle = end - 23 * HOUR  # first hour of the last 24
    start = middle - 24 * HOUR
    recent = func.sum(case((issue_hourly.c.hour >= middle, issue_hourly.c.count), else_=0))
    before = func.sum(case((issue_hourly.c.hour < middle, issue_hourly.c.count), else_=0))
    # Only an issue seen in the last 24 hours can have grown: its id from the (project_id, last_seen) index, then
    # its 48 hourly rows by the (issue_id, hour) key, summed per issue in key order (no join to the issues rows,
    # no sort to group); the titles of the ten found are read last. ~2x faster than a join grouped by title.
    seen = select(issues.c.id).where(issues.c.project_id == project_id, issues.c.last_seen >= middle)
    top = (
        select(issue_hourly.c.issue_id, recent.label("recent"), before.label("before"))
        .where(issue_hourly.c.issue_id.in_(seen), issue_hourly.c.hour >= start)
        .group_by(issue_hourly.c.issue_id)
        .having(recent > before)
        .order_by((recent - before).desc(), recent.desc(), issue_hourly.c.issue_id)
        .limit(GROWING_LIMIT)
        .subquery()
    )
    rows = connection.execute(
        select(issues.c.id, issues.c.title, issues.c.level, top.c.recent, top.c.before)
        .join(top, top.c.issue_id == issues.c.id)
        .order_by((top.c.recent - top.c.before).desc(), top.c.recent.desc(), issues.c.id)
    ).all()
    return [{**row._mapping, "increase": int(row.recent) - int(row.before)} for row in rows]


def _new_issues(connection: Connection, project_id: int, moment: float) -> dict[str, Any]:
    """Issues first seen on each UTC day of the last ``NEW_ISSUE_DAYS`` days, today included."""
    today = int(moment // DAY * DAY)
    start = today - (NEW_ISSUE_DAYS - 1) * DAY
    firsts = connection.execute(
        select(issues.c.first_seen).where(
            # first_seen >= start implies last_seen >= start: the (project_id, last_seen) index narrows the read.
            issues.c.project_id == project_id,
            issues.c.last_seen >= start,
            issues.c.first_seen >= start,
        )
    ).scalars()
    per_day = Counter(int(first // DAY * DAY) for first in firsts)
    x = list(range(start, today + 1, DAY))
    values = [per_day.get(day, 0) for day in x]
    return {
        "chart": chart(x, [("new issues", values)], kind="bars", step=DAY),
        "rows": [
            {"day": datetime.fromtimestamp(day, UTC).strftime("%Y-%m-%d"), "count": n}
            for day, n in zip(x, values, strict=True)
        ],
        "total": sum(values),
    }


def build_trends_router() -> APIRouter:
    router = APIRouter(route_class=WebRoute, include_in_schema=False)

    @router.get("/projects/{slug}/trends")
    def trends(request: Request, slug: str) -> Response:
        context = web(request)
        asked = request.query_params.get("range", "24h")
        chosen = asked if asked in RANGES else "24h"
        moment = now()
        end = int(moment // HOUR * HOUR)
        with context.engine.connect() as connection:
            found = project_for_page(request, connection, slug)
            if isinstance(found, Response):
                return found
            user, project = found
            by_level = _by_level(connection, project.id, end, RANGES[chosen])
            growing = _growing(connection, project.id, end)
            new_issues = _new_issues(connection, project.id, moment)
        session = context.cookies.read(request)
        values = {
            "user": user,
            "csrf_token": session.csrf if session else "",
            "project": project,
            "section": "trends",
            "range": chosen,
            "ranges": list(RANGES),
            "by_level": by_level,
            "growing": growing,
            "new_issues": new_issues,
            "growing_limit": GROWING_LIMIT,
            "new_issue_days": NEW_ISSUE_DAYS,
        }
        return context.page("trends.html", values)

    return router
