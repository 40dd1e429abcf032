"""Retention: events deleted by age and thinned out by count, in small transactions between digest batches.

Each project keeps events for ``retention_days`` and at most ``max_events`` of them (its own settings, else the
server-wide STACKWATCH_RETENTION_DAYS and STACKWATCH_RETENTION_MAX_EVENTS).

* **By age** everything older than the limit goes, pinned events too (a strict maximum age), with the attachments
  of those events, the issue's hourly counts older than the limit, and its users, runs, workflows, tenants and tag
  values not seen within it (the issue's distinct counts are lowered with them: they count what the retention
  period saw). An issue with no event left whose last event is older than the limit goes whole.
* **By count** nothing that counts is lost: issue counts, hourly series, tag facets, impact and alert windows come
  from counters the digest keeps, not from event rows. What is chosen to go: never an issue's first event or the
  first event of a regression (``events.pinned``), never its latest; the cap is shared between issues by max-min
  fairness (an issue with few events keeps all of them, the busy ones are cut to one common level), and within an
  issue events are thinned hour by hour from the fullest hours (again max-min fair), so every issue and every
  period keeps some. Within an hour the oldest go first: deleting neighbours rather than every other row leaves
  more of SQLite's pages empty enough to be merged or freed (bench/retention_disk.py measures what remains).

A pass runs every STACKWATCH_RETENTION_INTERVAL seconds. It is a generator of small units of work, each one short
transaction, which the digest worker advances between batches for a bounded time (see :meth:`Retention.step`):
neither ingest nor the digest ever waits long behind it. Under disk pressure (STACKWATCH_MAX_DISK_MB), the count
limits tighten in proportion (see :func:`tightened`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, delete, func, select, update

from stackwatch.server.alerts.store import MAX_WINDOW_MINUTES
from stackwatch.server.digest.items import hour_of
from stackwatch.server.digest.normalize import MAX_FUTURE
from stackwatch.server.digest.store import IMPACT_KINDS
from stackwatch.server.storage.disk import RETENTION_PRESSURE
from stackwatch.server.storage.schema import (
    attachments,
    client_report_counts,
    compression_dicts,
    events,
    issue_hourly,
    issue_impact,
    issue_minutes,
    issue_tags,
    issues,
    project_hourly,
    projects,
    session_counts,
)

__all__ = ["Limits", "PruneReport", "Retention", "fair_targets", "stored_totals", "thin", "tightened"]

log = logging.getLogger("stackwatch.retention")

DAY = 86_400.0
CHUNK = 200  # events deleted per transaction: a few milliseconds of write lock on SQLite
# Facet and impact values are forgotten by age at most this often: finding them reads an issue's rows of them.
FACET_PRUNE_INTERVAL = 3600.0
# Disk pressure (used / STACKWATCH_MAX_DISK_MB) from which the count limits tighten, and the level they aim at.
PRESSURE_TIGHTEN = RETENTION_PRESSURE
PRESSURE_TARGET = 0.8
_DICT_MARGIN = 600.0  # seconds: workers take up to a minute to use a new dictionary; batches in flight
_FACET_ISSUES = 50  # issues whose old values are forgotten per transaction
_ISSUES_PER_UNIT = 200  # issues looked at (an indexed read each) between two chances to stop
RETENTION_LOCK = 7316002  # PostgreSQL advisory lock: one worker prunes at a time


@dataclass(frozen=True, slots=True)
class Limits:
    """A project's limits: days events are kept, and events stored at most (0: no count limit)."""

    days: int
    max_events: int

    def of(self, retention_days: int | None, max_events: int | None) -> Limits:
        """A project's limits in force: its own settings (``None``: these, the server's)."""
        return Limits(retention_days or self.days, self.max_events if max_events is None else max_events)


@dataclass(slots=True)
class PruneReport:
    events: int = 0
    attachments: int = 0
    issues: int = 0
    values: int = 0  # impact and tag values forgotten by age

    def __bool__(self) -> bool:
        return bool(self.events or self.issues or self.values or self.attachments)


def stored_totals(connection: Connection, project_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Per project: events stored, and bytes stored (compressed payloads and attachments), from the counters."""
    totals = {project_id: [0, 0] for project_id in project_ids}
    query = (
        select(issues.c.project_id, func.sum(issues.c.stored_events), func.sum(issues.c.stored_bytes))
        .where(issues.c.project_id.in_(list(project_ids)))
        .group_by(issues.c.project_id)
    )
    for project_id, count, size in connection.execute(query):
        totals[project_id] = [int(count or 0), int(size or 0)]
    files = (
        select(attachments.c.project_id, func.sum(attachments.c.size))
        .where(attachments.c.project_id.in_(list(project_ids)))
        .group_by(attachments.c.project_id)
    )
    for project_id, size in connection.execute(files):
        totals[project_id][1] += int(size or 0)
    return {project_id: (count, size) for project_id, (count, size) in totals.items()}


def tightened(max_events: int, stored: int, pressure: float) -> int:
    """The count limit under disk pressure: unchanged below PRESSURE_TIGHTEN; above, what is stored now scaled
    down towards PRESSURE_TARGET of the disk limit (so a project without a count limit gets one too)."""
    if pressure < PRESSURE_TIGHTEN or stored <= 0:
        return max_events
    squeezed = max(1, int(stored * PRESSURE_TARGET / pressure))
    return squeezed if max_events <= 0 else min(max_events, squeezed)


def fair_targets(stored: dict[int, int], floors: dict[int, int], cap: int) -> dict[int, int]:
    """Events each issue may keep so that together they keep at most ``cap`` (or their floors, if more).

    Max-min fairness: issues at or under a common level keep everything, the others are cut to that level; an issue
    never goes below its floor (its pinned and latest events).
    """
    total = sum(stored.values())
    if total <= cap:
        return dict(stored)
    floor = {i: min(floors.get(i, 0), n) for i, n in stored.items()}
    remaining = max(0, cap - sum(floor.values()))
    # Water-filling over the extras beyond the floors, smallest first: each gets all of its extra while an equal
    # share of what remains covers it; the rest share what remains equally (the first ones one more, to fill cap).
    extras = sorted((n - floor[i], i) for i, n in stored.items())
    targets = dict(floor)
    for position, (extra, issue_id) in enumerate(extras):
        left = len(extras) - position
        if extra * left <= remaining:
            targets[issue_id] += extra
            remaining -= extra
            continue
        level, spare = divmod(remaining, left)
        for rank, (_, other) in enumerate(extras[position:]):
            targets[other] += level + (1 if rank < spare else 0)
        break
    return targets


def thin(candidates: Sequence[tuple[int, float]], remove: int) -> list[int]:
    """Ids of ``remove`` events to delete out of ``candidates`` ((id, received_at), oldest first).

    Hours keep events in max-min fair shares (the fullest hours give first, an hour with few events keeps them), and
    within an hour its newest are kept.
    """
    if remove <= 0:
        return []
    if remove >= len(candidates):
        return [event_id for event_id, _ in candidates]
    hours: dict[int, list[int]] = {}
    for event_id, received in candidates:
        hours.setdefault(hour_of(received), []).append(event_id)
    keep = fair_targets({h: len(ids) for h, ids in hours.items()}, {}, len(candidates) - remove)
    doomed: list[int] = []
    for hour, ids in hours.items():
        doomed.extend(ids[: len(ids) - keep[hour]])  # the hour's oldest
    return doomed


_DELETE_EVENTS = (
    delete(events)
    .where(events.c.id.in_(bindparam("ids", expanding=True)))
    .returning(events.c.issue_id, events.c.event_id, func.length(events.c.payload).label("size"))
)


class Retention:
    """Runs retention passes for every project. Not thread-safe: one per digest worker."""

    def __init__(
        self,
        engine: Engine,
        defaults: Limits,
        *,
        interval: float = 60.0,
        pressure: Callable[[], float] = lambda: 0.0,
        clock: Callable[[], float] = time.time,
        chunk: int = CHUNK,
        max_future: float = MAX_FUTURE,
    ):
        self._engine = engine
        self._max_future = max_future  # how far ahead of its receive time the digest lets a timestamp be
        self._defaults = defaults
        self._interval = interval
        self._pressure = pressure
        self._clock = clock
        self._chunk = chunk
        self._pass: Iterator[None] | None = None
        self._started = float("-inf")  # monotonic time the last pass started
        self._facets_pruned = float("-inf")
        self.report = PruneReport()  # of the pass under way, or the last one

    @property
    def defaults(self) -> Limits:
        """The server-wide limits, for a project without its own."""
        return self._defaults

    def step(self, budget: float) -> bool:
        """Advance the pass under way (starting one when due) for about ``budget`` seconds; True when one ended."""
        if self._pass is None:
            if time.monotonic() - self._started < self._interval:
                return False
            self._started = time.monotonic()
            self.report = PruneReport()
            self._pass = self.units()
        deadline = time.monotonic() + budget
        for _ in self._pass:
            if time.monotonic() >= deadline:
                return False
        self._pass = None
        if self.report:
            r = self.report
            log.info(
                "retention: deleted %d events, %d attachments, %d issues, forgot %d impact and tag values",
                r.events,
                r.attachments,
                r.issues,
                r.values,
            )
        return True

    def run_pass(self) -> PruneReport:
        """One whole pass now, whatever the interval (benchmarks and tests)."""
        self._pass = None
        self._started = float("-inf")
        while not self.step(budget=3600.0):
            pass
        return self.report

    # --- the pass ---------------------------------------------------------------------------------------------

    def units(self) -> Iterator[None]:
        """A whole pass, as units of work: each ``next`` commits one short transaction (or a few reads)."""
        now = self._clock()
        with self._engine.connect() as connection:
            rows = connection.execute(select(projects.c.id, projects.c.retention_days, projects.c.max_events)).all()
        facets = time.monotonic() - self._facets_pruned >= FACET_PRUNE_INTERVAL
        if facets:
            self._facets_pruned = time.monotonic()
        for row in rows:
            limits = self._defaults.of(row.retention_days, row.max_events)
            yield from self._by_age(row.id, now - limits.days * DAY, facets=facets)
            yield from self._by_count(row.id, limits.max_events)
        yield from self._old_minutes(now)

    def _aging_issues(self, project_id: int, cutoff: float) -> list[int]:
        """The project's issues that may hold something older than ``cutoff``.

        An event's timestamp is never more than the digest's allowance for clock skew past its receive time
        (digest/timestamps.py), so an issue first seen later than ``cutoff`` plus that received nothing before.
        """
        young = cutoff + self._max_future
        with self._engine.connect() as connection:
            query = select(issues.c.id).where(issues.c.project_id == project_id, issues.c.first_seen < young)
            return list(connection.execute(query.order_by(issues.c.id)).scalars())

    def _by_age(self, project_id: int, cutoff: float, *, facets: bool) -> Iterator[None]:
        issue_ids = self._aging_issues(project_id, cutoff)
        for position, issue_id in enumerate(issue_ids):
            if position % _ISSUES_PER_UNIT == _ISSUES_PER_UNIT - 1:
                yield  # looking at many issues is work too
            old = and_(events.c.issue_id == issue_id, events.c.pinned.in_([False, True]), events.c.received_at < cutoff)
            while True:
                with self._engine.connect() as connection:
                    ids = list(
                        connection.execute(
                            select(events.c.id).where(old).order_by(events.c.received_at).limit(self._chunk)
                        ).scalars()
                    )
                if not ids:
                    break
                if not self._delete_events(project_id, ids):
                    return  # another worker prunes: this pass ends here
                yield
        for start in range(0, len(issue_ids) if facets else 0, _FACET_ISSUES):
            with _writing(self._engine) as connection:
                if connection is not None:
                    for issue_id in issue_ids[start : start + _FACET_ISSUES]:
                        self.report.values += _forget_values(connection, issue_id, cutoff)
            yield
        with _writing(self._engine) as connection:
            if connection is None:
                return
            hour = hour_of(cutoff)
            of_project = select(issues.c.id).where(issues.c.project_id == project_id).scalar_subquery()
            connection.execute(
                delete(issue_hourly).where(issue_hourly.c.issue_id.in_(of_project), issue_hourly.c.hour < hour)
            )
            for table in (project_hourly, session_counts, client_report_counts):
                connection.execute(delete(table).where(table.c.project_id == project_id, table.c.hour < hour))
            _forget_dictionaries(connection, project_id, cutoff)
        yield
        # Issues left without events, whose last event is older than the limit, with their counters (cascades).
        empty = (
            select(issues.c.id)
            .where(issues.c.project_id == project_id, issues.c.stored_events <= 0, issues.c.last_seen < cutoff)
            .limit(self._chunk)
            .scalar_subquery()
        )
        while True:
            with _writing(self._engine) as connection:
                if connection is None:
                    return
                gone = len(
                    connection.execute(delete(issues).where(issues.c.id.in_(empty)).returning(issues.c.id)).all()
                )
            self.report.issues += gone
            yield
            if gone < self._chunk:
                return

    def _by_count(self, project_id: int, max_events: int) -> Iterator[None]:
        with self._engine.connect() as connection:
            stored: dict[int, int] = dict(
                connection.execute(
                    select(issues.c.id, issues.c.stored_events).where(
                        issues.c.project_id == project_id, issues.c.stored_events > 0
                    )
                ).all()
            )
        total = sum(stored.values())
        cap = tightened(max_events, total, self._pressure())
        if cap <= 0 or total <= cap:
            return
        with self._engine.connect() as connection:
            pinned: dict[int, int] = dict(
                connection.execute(
                    select(events.c.issue_id, func.count())
                    .where(events.c.issue_id.in_(list(stored)), events.c.pinned.is_(True))
                    .group_by(events.c.issue_id)
                ).all()
            )
        floors = {issue_id: pinned.get(issue_id, 0) + 1 for issue_id in stored}  # and the latest event
        targets = fair_targets(stored, floors, cap)
        for issue_id in sorted(stored, key=lambda i: stored[i] - targets[i], reverse=True):
            excess = stored[issue_id] - targets[issue_id]
            if excess <= 0:
                break
            with self._engine.connect() as connection:
                candidates = [
                    (row.id, row.received_at)
                    for row in connection.execute(
                        select(events.c.id, events.c.received_at)
                        .where(events.c.issue_id == issue_id, events.c.pinned.is_(False))
                        .order_by(events.c.received_at, events.c.id)
                    )
                ]
            doomed = thin(candidates[:-1], excess)  # the latest stays
            for start in range(0, len(doomed), self._chunk):
                if not self._delete_events(project_id, doomed[start : start + self._chunk]):
                    return
                yield
            gone = set(doomed)
            kept = min((received for event_id, received in candidates if event_id not in gone), default=None)
            if kept is not None:
                with _writing(self._engine) as connection:
                    if connection is None:
                        return
                    self.report.values += _forget_runs(connection, issue_id, kept)
                yield

    def _delete_events(self, project_id: int, ids: list[int]) -> bool:
        """Delete these events and what hangs on them; False when another worker's pass holds the lock."""
        with _writing(self._engine) as connection:
            if connection is None:
                return False
            gone = connection.execute(_DELETE_EVENTS, {"ids": ids}).all()
            if not gone:
                return True
            per_issue: dict[int, list[int]] = {}
            for row in gone:
                entry = per_issue.setdefault(row.issue_id, [0, 0])
                entry[0] += 1
                entry[1] += row.size or 0
            connection.execute(
                update(issues)
                .where(issues.c.id == bindparam("b_id"))
                .values(
                    stored_events=issues.c.stored_events - bindparam("b_n"),
                    stored_bytes=issues.c.stored_bytes - bindparam("b_bytes"),
                ),
                [{"b_id": i, "b_n": n, "b_bytes": size} for i, (n, size) in sorted(per_issue.items())],
            )
            removed = connection.execute(
                delete(attachments).where(
                    attachments.c.project_id == project_id,
                    attachments.c.event_id.in_([row.event_id for row in gone]),
                )
            ).rowcount
            self.report.events += len(gone)
            self.report.attachments += removed or 0
        return True

    def _old_minutes(self, now: float) -> Iterator[None]:
        """Per-minute counts older than the longest alert window (a pass every minute finds a minute's worth)."""
        with _writing(self._engine) as connection:
            if connection is not None:
                oldest = int(now // 60) - MAX_WINDOW_MINUTES - 1
                connection.execute(delete(issue_minutes).where(issue_minutes.c.minute < oldest))
        yield


def _forget_dictionaries(connection: Connection, project_id: int, cutoff: float) -> None:
    """Delete the compression dictionaries no stored event can need any more.

    A dictionary compresses events digested until the next one replaces it (plus the minute other workers take to
    see the new one); an event's receive time is before its digest. So once a newer dictionary is older than the
    age limit (with a margin), every event compressed with the older ones was received before the limit and is gone.
    """
    replaced = (
        select(func.max(compression_dicts.c.id))
        .where(compression_dicts.c.project_id == project_id, compression_dicts.c.created_at < cutoff - _DICT_MARGIN)
        .scalar_subquery()
    )
    connection.execute(
        delete(compression_dicts).where(compression_dicts.c.project_id == project_id, compression_dicts.c.id < replaced)
    )


def _forget_runs(connection: Connection, issue_id: int, before: float) -> int:
    """Delete the issue's runs last seen before its oldest event that may still be thinned out (``before``).

    Such a run's events are gone, or pinned: a workflow run happens once, so its row would only ever dedupe a run
    that comes back after its events were thinned out; without this, every run ever seen would keep a row until
    the age limit, and the database would keep growing under a count limit. ``run_count`` is not lowered: it stays
    the count of distinct runs seen (users, workflows and tenants recur, and keep their rows until the age limit).
    """
    return (
        connection.execute(
            delete(issue_impact).where(
                issue_impact.c.issue_id == issue_id, issue_impact.c.kind == "run", issue_impact.c.last_seen < before
            )
        ).rowcount
        or 0
    )


def _forget_values(connection: Connection, issue_id: int, cutoff: float) -> int:
    """Delete the issue's impact values not seen since ``cutoff`` (lowering its distinct counts) and tag values."""
    lowered: dict[str, Any] = {}
    forgotten = 0
    for kind, column in IMPACT_KINDS.items():
        n = connection.execute(
            delete(issue_impact).where(
                issue_impact.c.issue_id == issue_id, issue_impact.c.kind == kind, issue_impact.c.last_seen < cutoff
            )
        ).rowcount
        if n:
            lowered[column] = issues.c[column] - n
            forgotten += n
    if lowered:
        connection.execute(update(issues).where(issues.c.id == issue_id).values(**lowered))
    tags = connection.execute(
        delete(issue_tags).where(issue_tags.c.issue_id == issue_id, issue_tags.c.last_seen < cutoff)
    ).rowcount
    return forgotten + (tags or 0)


@contextmanager
def _writing(engine: Engine) -> Iterator[Connection | None]:
    """A short writing transaction; ``None`` (and nothing to do) while another PostgreSQL worker's pass writes."""
    with engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
        if connection.dialect.name == "postgresql":
            got = connection.exec_driver_sql(f"SELECT pg_try_advisory_xact_lock({RETENTION_LOCK})").scalar()
            if not got:
                yield None
                return
        yield connection
