"""Events over time for the dashboard's charts and sparklines, read from the hourly counts (``issue_hourly``).

Buckets are in UTC and include the empty ones: the last 24 hours are the current hour and the 23 before it, the
last 30 days the current day and the 29 before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from stackwatch.server.storage.schema import issue_hourly, issues

__all__ = ["RANGES", "Series", "issue_series", "issue_sparklines", "project_sparklines"]

HOUR, DAY = 3600, 86400
RANGES = {"24h": (HOUR, 24), "30d": (DAY, 30)}  # bucket size in seconds, number of buckets


@dataclass(frozen=True, slots=True)
class Series:
    step: int
    x: list[int]  # the start of each bucket, epoch seconds
    counts: list[int]

    @property
    def total(self) -> int:
        return sum(self.counts)

    @property
    def peak(self) -> int:
        return max([1, *self.counts])

    @property
    def points(self) -> list[tuple[int, int]]:
        return list(zip(self.x, self.counts, strict=True))


def _buckets(step: int, size: int, moment: float) -> list[int]:
    end = int(moment // step) * step
    return [end - (size - 1 - i) * step for i in range(size)]


def _fill(step: int, size: int, moment: float, hourly: Sequence[tuple[int, int]]) -> Series:
    x = _buckets(step, size, moment)
    counts = dict.fromkeys(x, 0)
    for hour, count in hourly:
        bucket = int(hour) // step * step
        if bucket in counts:
            counts[bucket] += int(count)
    return Series(step, x, [counts[start] for start in x])


def issue_series(connection: Connection, issue_id: int, range_name: str, moment: float) -> Series:
    """An issue's events per hour over 24 hours, or per day over 30 days (``range_name``: ``24h`` or ``30d``)."""
    step, size = RANGES[range_name]
    since = _buckets(step, size, moment)[0]
    rows = connection.execute(
        select(issue_hourly.c.hour, issue_hourly.c.count).where(
            issue_hourly.c.issue_id == issue_id, issue_hourly.c.hour >= since
        )
    )
    return _fill(step, size, moment, [(hour, count) for hour, count in rows])


def issue_sparklines(connection: Connection, issue_ids: Sequence[int], moment: float) -> dict[int, Series]:
    """The last 24 hours of each issue, in one query."""
    since = _buckets(HOUR, 24, moment)[0]
    hourly: dict[int, list[tuple[int, int]]] = {issue_id: [] for issue_id in issue_ids}
    if issue_ids:
        rows = connection.execute(
            select(issue_hourly.c.issue_id, issue_hourly.c.hour, issue_hourly.c.count).where(
                issue_hourly.c.issue_id.in_(list(issue_ids)), issue_hourly.c.hour >= since
            )
        )
        for issue_id, hour, count in rows:
            hourly[int(issue_id)].append((hour, count))
    return {issue_id: _fill(HOUR, 24, moment, counts) for issue_id, counts in hourly.items()}


def project_sparklines(connection: Connection, project_ids: Sequence[int], moment: float) -> dict[int, Series]:
    """The last 24 hours of each project's events, in one grouped query."""
    since = _buckets(HOUR, 24, moment)[0]
    hourly: dict[int, list[tuple[int, int]]] = {project_id: [] for project_id in project_ids}
    if project_ids:
        rows = connection.execute(
            select(issues.c.project_id, issue_hourly.c.hour, func.sum(issue_hourly.c.count))
            .join(issues, issues.c.id == issue_hourly.c.issue_id)
            .where(issues.c.project_id.in_(list(project_ids)), issue_hourly.c.hour >= since)
            .group_by(issues.c.project_id, issue_hourly.c.hour)
        )
        for project_id, hour, count in rows:
            hourly[int(project_id)].append((hour, count))
    return {project_id: _fill(HOUR, 24, moment, counts) for project_id, counts in hourly.items()}
