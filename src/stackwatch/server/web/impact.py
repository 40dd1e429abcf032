"""The workflow impact of an issue, ``/issues/{id}/impact``, and the page of one MeshHook run, ``/runs/{run_id}``.

Both read the workflow columns the digest keeps on every event (``component``, ``workflow_id``, ``run_id``,
``step_id``, ``tenant``; DESIGN §3.4). Every list is bounded and says so. The impact page's tables each read the
issue's events through the ``(issue_id, id)`` index; the run page reads the run's events through ``run_id``'s.
With ``meshhook_run_url`` set, runs link into MeshHook's run console too (``meshhook_link``).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from sqlalchemy import Connection, func, select
from starlette.requests import Request
from starlette.responses import Response

from stackwatch.server.storage.schema import events, issues
from stackwatch.server.web.access import visible_projects
from stackwatch.server.web.context import WebRoute, epoch, web
from stackwatch.server.web.issue_page import issue_for_page
from stackwatch.server.web.routes import current_user, login_redirect

__all__ = ["IMPACT_LIMIT", "RUN_EVENTS_LIMIT", "build_impact_router", "meshhook_link", "run_path"]

IMPACT_LIMIT = 50  # rows of each impact table
IMPACT_WINDOW = 10_000  # the impact tables read at most this many of the issue's latest events
RUN_EVENTS_LIMIT = 500  # events listed on a run page
MAX_RUN_ID = 200  # the column's width: a longer run id matches no event


def meshhook_link(template: str, values: Mapping[str, str | None]) -> str | None:
    """The MeshHook URL for one row, or ``None``: no template, or a placeholder it uses has no value here.

    Values are percent-encoded whole (``/``, ``?``, ``#`` too), so event data cannot change the URL's shape.
    """
    if not template:
        return None
    filled: dict[str, str] = {}
    for _, name, _, _ in string.Formatter().parse(template):
        if name is None:
            continue
        value = values.get(name)
        if not value:
            return None
        filled[name] = quote(value, safe="")
    return template.format(**filled)


def run_path(run_id: str) -> str:
    """The dashboard's page of a run; the id is encoded whole (a ``/`` in it too)."""
    return "/runs/" + quote(run_id, safe="")


def _time(moment: float) -> str:
    """To the millisecond: errors of one run are often seconds apart."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


@dataclass(slots=True)
class Bounded:
    """The first rows of a list and how many rows there are in all."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0


def _top(groups: Mapping[Any, dict[str, Any]], key: Callable[[dict[str, Any]], Any]) -> Bounded:
    rows = sorted(groups.values(), key=key)
    return Bounded(rows[:IMPACT_LIMIT], len(rows))


def _window_start(connection: Connection, issue_id: int) -> int | None:
    """The storage id of the oldest event in the issue's latest ``IMPACT_WINDOW``; ``None`` when it has fewer."""
    query = (
        select(events.c.id)
        .where(events.c.issue_id == issue_id)
        .order_by(events.c.id.desc())
        .offset(IMPACT_WINDOW - 1)
        .limit(1)
    )
    found = connection.execute(query).scalar()
    return None if found is None else int(found)


def _impact(connection: Connection, issue_id: int, template: str) -> dict[str, Any]:
    """Every table of the impact page from ONE read of the issue's latest events (at most ``IMPACT_WINDOW``,
    through the ``(issue_id, id)`` index): their counts per distinct combination of workflow columns, summed up
    here. Bounded so that the page costs the same for an issue of a million events; the counts at the top of
    the page are the issue's own, over all its events."""
    start = _window_start(connection, issue_id)
    window = events.c.issue_id == issue_id
    if start is not None:
        window = window & (events.c.id >= start)
    in_window = select(
        events.c.workflow_id,
        events.c.step_id,
        events.c.run_id,
        events.c.tenant,
        events.c.component,
        events.c.timestamp,
        events.c.id,
    ).where(window)
    if connection.dialect.name == "postgresql":
        # From ``id >= start`` PostgreSQL expected ~100,000 rows instead of 10,000 and planned for them (parallel
        # workers, JIT compilation: 80 ms instead of 14); a LIMIT tells it. SQLite flattens the plain subquery.
        in_window = in_window.order_by(events.c.id.desc()).limit(IMPACT_WINDOW)
    rows = in_window.subquery()
    # Read as the rows come, not ``.all()``: thousands of rows kept alive through the loop survived into the
    # garbage collector's oldest generation and set off its full passes (~70 ms each, the page's p95 before);
    # only tuples of plain values are kept (``runs``, ``links``), which the collector stops tracking.
    combos = connection.execute(
        select(
            rows.c.workflow_id,
            rows.c.step_id,
            rows.c.run_id,
            rows.c.tenant,
            rows.c.component,
            func.count().label("n"),
            func.min(rows.c.timestamp).label("first"),
            func.max(rows.c.timestamp).label("last"),
            func.max(rows.c.id).label("latest"),
        ).group_by(rows.c.workflow_id, rows.c.step_id, rows.c.run_id, rows.c.tenant, rows.c.component)
    )
    workflows: dict[str, dict[str, Any]] = {}
    steps: dict[tuple[str | None, str], dict[str, Any]] = {}
    components: dict[str, dict[str, Any]] = {}
    tenants: dict[str, dict[str, Any]] = {}
    runs: dict[str, tuple[Any, ...]] = {}
    links: list[tuple[str, str | None, str | None]] = []  # (run, workflow, step) of each combination with a run
    window_events = 0
    # Unpacked to plain values: reading a SQLAlchemy row's attribute costs ~1 µs, and an issue with thousands of
    # runs has thousands of combinations (5,500 for the largest seeded issue: ~150 ms of the page before).
    for workflow_id, step_id, run_id, tenant, component, count, first, last, latest in combos:
        n = int(count)
        window_events += n
        # ``get`` before creating: most combinations add to a row that exists (no dict or set built for nothing).
        if workflow_id is not None:
            row = workflows.get(workflow_id)
            if row is None:
                row = workflows[workflow_id] = {"workflow_id": workflow_id, "events": 0, "run_ids": set(),
                                                "step_ids": set(), "first_seen": first, "last_seen": last}  # fmt: skip
            row["events"] += n
            row["run_ids"].add(run_id)
            row["step_ids"].add(step_id)
            row["first_seen"], row["last_seen"] = min(row["first_seen"], first), max(row["last_seen"], last)
        if step_id is not None:
            key = (workflow_id, step_id)
            row = steps.get(key)
            if row is None:
                row = steps[key] = {"workflow_id": workflow_id, "step_id": step_id, "events": 0, "run_ids": set()}
            row["events"] += n
            row["run_ids"].add(run_id)
        if component is not None:
            row = components.get(component)
            if row is None:
                row = components[component] = {"component": component, "events": 0}
            row["events"] += n
        if tenant is not None:
            row = tenants.get(tenant)
            if row is None:
                row = tenants[tenant] = {"tenant": tenant, "events": 0}
            row["events"] += n
        if run_id is not None:
            # A tuple of plain values per run (events, last seen, then the latest event's id, workflow, step and
            # tenant): thousands of runs, and dicts and sets for each made the garbage collector's full passes
            # the page's p95. Rows are built for the runs shown only, below.
            links.append((run_id, workflow_id, step_id))
            seen = runs.get(run_id)
            if seen is None:
                runs[run_id] = (n, last, latest, workflow_id, step_id, tenant)
            else:
                newest = (latest, workflow_id, step_id, tenant) if latest > seen[2] else seen[2:]
                runs[run_id] = (seen[0] + n, max(seen[1], last), *newest)
    for group in (*workflows.values(), *steps.values()):
        group["runs"] = len(group.pop("run_ids") - {None})
    for group in workflows.values():
        group["steps"] = len(group.pop("step_ids") - {None})
    shown = sorted(runs.items(), key=lambda item: (-item[1][1], item[0]))[:IMPACT_LIMIT]
    names: dict[str, tuple[set[str | None], set[str | None]]] = {run_id: (set(), set()) for run_id, _ in shown}
    for run_id, workflow_id, step_id in links:
        if run_id in names:
            names[run_id][0].add(workflow_id)
            names[run_id][1].add(step_id)
    run_rows = []
    for run_id, (n, last, _, workflow_id, step_id, tenant) in shown:
        values = {"run_id": run_id, "workflow_id": workflow_id, "step_id": step_id, "tenant": tenant}
        workflow_ids, step_ids = names[run_id]
        run_rows.append(
            {
                "run_id": run_id,
                "events": n,
                "last_seen": last,
                "workflow_ids": sorted(w for w in workflow_ids if w is not None),
                "step_ids": sorted(s for s in step_ids if s is not None),
                "meshhook_url": meshhook_link(template, values),
                "url": run_path(run_id),
            }
        )
    return {
        "window": window_events if start is not None else None,
        "workflows": _top(workflows, lambda row: (-row["events"], row["workflow_id"])),
        "steps": _top(steps, lambda row: (-row["events"], row["workflow_id"] or "", row["step_id"])),
        "components": _top(components, lambda row: (-row["events"], row["component"])),
        "tenants": _top(tenants, lambda row: (-row["events"], row["tenant"])),
        "runs": Bounded(run_rows, len(runs)),
    }


def _distinct(rows: Sequence[Any], key: str) -> list[str]:
    return sorted({getattr(row, key) for row in rows if getattr(row, key) is not None})


def _run(connection: Connection, run_id: str, project_ids: list[int], template: str) -> dict[str, Any] | None:
    """What the page shows of one run, within the projects the user may see; ``None`` when nothing is visible."""
    if not project_ids or "\x00" in run_id or len(run_id) > MAX_RUN_ID:
        return None
    # ``+ 0``: the run_id index is the one that narrows; a plan through an index led by the project (there was one,
    # (project_id, event_id), before revision 0012) would read the whole project.
    condition = (events.c.run_id == run_id) & (events.c.project_id + 0).in_(project_ids)
    # One row per distinct combination of the run's workflow columns: the page's summary in one read.
    summary = connection.execute(
        select(
            events.c.workflow_id,
            events.c.step_id,
            events.c.tenant,
            events.c.component,
            func.count().label("events"),
            func.min(events.c.timestamp).label("first"),
            func.max(events.c.timestamp).label("last"),
            func.max(events.c.id).label("latest"),
        )
        .where(condition)
        .group_by(events.c.workflow_id, events.c.step_id, events.c.tenant, events.c.component)
    ).all()
    if not summary:
        return None
    latest = max(summary, key=lambda row: row.latest)
    values = {"run_id": run_id, "workflow_id": latest.workflow_id, "step_id": latest.step_id, "tenant": latest.tenant}
    listed = connection.execute(
        select(
            events.c.event_id,
            events.c.issue_id,
            events.c.timestamp,
            events.c.level,
            events.c.step_id,
            events.c.component,
            events.c.workflow_id,
            issues.c.title,
        )
        .join(issues, issues.c.id == events.c.issue_id)
        .where(condition)
        .order_by(events.c.timestamp, events.c.id)
        .limit(RUN_EVENTS_LIMIT)
    ).all()
    involved = connection.execute(
        select(issues.c.id, issues.c.title, issues.c.level, issues.c.status, func.count().label("events"))
        .join(events, events.c.issue_id == issues.c.id)
        .where(condition)
        .group_by(issues.c.id, issues.c.title, issues.c.level, issues.c.status)
        .order_by(func.count().desc(), issues.c.id)
    ).all()
    return {
        "run_id": run_id,
        "workflow_ids": _distinct(summary, "workflow_id"),
        "tenants": _distinct(summary, "tenant"),
        "components": _distinct(summary, "component"),
        "step_ids": _distinct(summary, "step_id"),
        "count": sum(row.events for row in summary),
        "first": min(row.first for row in summary),
        "last": max(row.last for row in summary),
        "events": [{**row._mapping, "time": _time(row.timestamp)} for row in listed],
        "issues": [dict(row._mapping) for row in involved],
        "meshhook_url": meshhook_link(template, values),
    }


def build_impact_router() -> APIRouter:
    router = APIRouter(route_class=WebRoute, include_in_schema=False)

    @router.get("/issues/{issue_id}/impact")
    def issue_impact(request: Request, issue_id: str) -> Response:
        context = web(request)
        with context.engine.connect() as connection:
            found = issue_for_page(request, connection, issue_id)
            if isinstance(found, Response):
                return found
            user, issue, project = found
            tables = _impact(connection, issue["id"], context.settings.meshhook_run_url)
        session = context.cookies.read(request)
        values = {
            "user": user,
            "csrf_token": session.csrf if session else "",
            "project": project,
            "issue": {**issue, "first_seen": epoch(issue["first_seen"]), "last_seen": epoch(issue["last_seen"])},
            "limit": IMPACT_LIMIT,
            **tables,
        }
        return context.page("impact.html", values)

    @router.get("/runs/{run_id:path}")  # a run id may hold a slash (linked as %2F)
    def run_page(request: Request, run_id: str) -> Response:
        context = web(request)
        with context.engine.connect() as connection:
            user = current_user(request, connection)
            if user is None:
                return login_redirect(request)
            project_ids = [project.id for project in visible_projects(connection, user)]
            run = _run(connection, run_id, project_ids, context.settings.meshhook_run_url)
        if run is None:
            return context.error(404, "Not found", "There is no such run, or none of its errors is in your projects.")
        session = context.cookies.read(request)
        values = {"user": user, "csrf_token": session.csrf if session else "", "run": run, "limit": RUN_EVENTS_LIMIT}
        return context.page("run.html", values)

    return router
