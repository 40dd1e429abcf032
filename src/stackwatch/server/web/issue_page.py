"""The issue page, ``/issues/{id}``: counts, tag facets, the last day's events, one event in full, and the team's
assignee, comments and activity (``issue_team``).

The issue, its facets and its hourly series are read with the REST API's queries (``api.queries``), and its
status changed with the API's ``set_status``, so page and API agree. The event shown is the latest of the issue,
or ``?event=<event_id>`` when that event belongs to it; older and newer go by the events' storage order. The
event's attachments are listed with it; only administrators may download them (``/issues/{id}/attachments/{id}``).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import Connection, select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from stackwatch.server.api import queries
from stackwatch.server.storage import snooze
from stackwatch.server.storage.activity import Actor
from stackwatch.server.storage.db import now
from stackwatch.server.storage.payloads import PayloadUnreadable
from stackwatch.server.storage.schema import events, issues
from stackwatch.server.web.access import ProjectRef, User, can_see_project, visible_projects
from stackwatch.server.web.activity import RANGES, issue_series
from stackwatch.server.web.attachments import download, event_attachments, find_attachment
from stackwatch.server.web.charts import chart
from stackwatch.server.web.context import Web, WebRoute, epoch, form, web
from stackwatch.server.web.event_view import event_view
from stackwatch.server.web.issue_team import build_issue_team_router, team_values
from stackwatch.server.web.issues import ACTIONS, MAX_ID
from stackwatch.server.web.live import TICK, event_stream
from stackwatch.server.web.routes import current_user, login_redirect
from stackwatch.server.web.sessions import session_user

log = logging.getLogger("stackwatch.web")

__all__ = ["build_issue_page_router", "issue_for_page"]


def _issue_id(text: str) -> int | None:
    if not (text.isascii() and text.isdigit() and len(text) < 20):
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None


def _visible_issue(
    connection: Connection, user: User, issue_id: int | None
) -> tuple[dict[str, Any], ProjectRef] | None:
    """The issue and its project when the user may see them; ``None`` alike for a missing and a hidden issue."""
    if issue_id is None:
        return None
    try:
        issue = queries.issue_by_id(connection, issue_id)
    except HTTPException:
        return None
    # ``visible_projects`` is ``can_see_project``'s query for every project: access and the name in one read.
    project = next((p for p in visible_projects(connection, user) if p.id == issue["project_id"]), None)
    return None if project is None else (issue, project)


def _not_found(context: Web) -> Response:
    return context.error(404, "Not found", "There is no such issue, or you are not a member of its project.")


def issue_for_page(
    request: Request, connection: Connection, issue_id: str
) -> tuple[User, dict[str, Any], ProjectRef] | Response:
    """The logged-in user and the issue they asked for, with its project; or the answer to give instead: the login
    page (and back), or the same 404 for a missing and a hidden issue."""
    user = current_user(request, connection)
    if user is None:
        return login_redirect(request)
    found = _visible_issue(connection, user, _issue_id(issue_id))
    if found is None:
        return _not_found(web(request))
    return user, *found


def _event_row(connection: Connection, issue_id: int, event_id: str | None) -> Any:
    """The issue's latest event, or the one asked for when it belongs to the issue."""
    if event_id is not None:
        # ``+ 0``: without statistics SQLite would read the whole issue through the (issue_id, …) indexes to find
        # the event (25 ms for an issue of 124,000 events); the event_id index is the one that narrows.
        return queries.find_event(connection, event_id.replace("\x00", ""), events.c.issue_id + 0 == issue_id)
    query = select(events).where(events.c.issue_id == issue_id).order_by(events.c.id.desc()).limit(1)
    return connection.execute(query).first()


def _event_data(connection: Connection, row: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The stored event, or why it cannot be shown (its payload does not open: a missing dictionary)."""
    if row is None:
        return None, None
    try:
        return queries.event_data(connection, row), None
    except PayloadUnreadable as exc:
        log.error("event %s of issue %d cannot be read: %s", row.event_id, row.issue_id, exc)
        return None, f"Event {row.event_id} is stored but cannot be read: {exc}."


def _neighbours(connection: Connection, issue_id: int, row_id: int) -> tuple[str | None, str | None]:
    """The event ids just before and just after an event of the issue, in storage order."""
    base = select(events.c.event_id).where(events.c.issue_id == issue_id)
    older = connection.execute(base.where(events.c.id < row_id).order_by(events.c.id.desc()).limit(1)).scalar()
    newer = connection.execute(base.where(events.c.id > row_id).order_by(events.c.id).limit(1)).scalar()
    return older, newer


# The Ignore choices of the page: key (the form's ``snooze`` value): (label, (condition, N)); N seconds from now
# for "until". The REST API takes any condition (storage/snooze.py); these are the common ones.
SNOOZE_CHOICES: dict[str, tuple[str, tuple[str, int] | None]] = {
    "forever": ("forever", None),
    "1h": ("for 1 hour", ("until", 3600)),
    "24h": ("for 24 hours", ("until", 24 * 3600)),
    "7d": ("for 7 days", ("until", 7 * 24 * 3600)),
    "events-10": ("until 10 more events", ("events", 10)),
    "events-100": ("until 100 more events", ("events", 100)),
    "per-hour-100": ("until 100 events in an hour", ("per_hour", 100)),
}


def _snooze(choice: str, moment: float) -> snooze.Snooze | None:
    """The condition of a page choice (a key of ``SNOOZE_CHOICES``), ``None`` for forever."""
    condition = SNOOZE_CHOICES[choice][1]
    if condition is None:
        return None
    kind, amount = condition
    return snooze.Snooze(kind, moment + amount if kind == "until" else float(amount))


def _version(connection: Connection, issue_id: int) -> str | None:
    """What the live part of the page shows, as one string: it changes when the page should be redrawn."""
    row = connection.execute(
        select(
            issues.c.event_count,
            issues.c.last_seen,
            issues.c.status,
            issues.c.user_count,
            issues.c.run_count,
            issues.c.workflow_count,
            issues.c.tenant_count,
            issues.c.snooze_threshold,
        ).where(issues.c.id == issue_id)
    ).first()
    return None if row is None else ":".join(str(value) for value in row)


def _latest_event(connection: Connection, issue_id: int) -> str | None:
    query = select(events.c.event_id).where(events.c.issue_id == issue_id).order_by(events.c.id.desc()).limit(1)
    found: str | None = connection.execute(query).scalar()
    return found


RangeParam = Annotated[str | None, Query(alias="range")]


def _range(value: str | None) -> str:
    return value if value in RANGES else "24h"


def _summary_values(
    connection: Connection, request: Request, issue: dict[str, Any], range_name: str, shown: str | None
) -> dict[str, Any]:
    """What ``_issue_summary.html`` needs: the issue with epoch times, the chart and the newest event's id."""
    series = issue_series(connection, issue["id"], range_name, now())
    session = web(request).cookies.read(request)
    return {
        "csrf_token": session.csrf if session else "",
        "issue": {**issue, "first_seen": epoch(issue["first_seen"]), "last_seen": epoch(issue["last_seen"])},
        "series": series,
        "chart": chart(series.x, [("events", series.counts)], step=series.step),
        "range_name": range_name,
        "shown_event": shown,
        "latest_event": _latest_event(connection, issue["id"]),
        "snooze_choices": [(key, label) for key, (label, _) in SNOOZE_CHOICES.items()],
    }


def build_issue_page_router() -> APIRouter:
    router = APIRouter(route_class=WebRoute, include_in_schema=False)

    @router.get("/issues/{issue_id}")
    def issue_page(
        request: Request, issue_id: str, event: str | None = None, range_name: RangeParam = None
    ) -> Response:
        context = web(request)
        with context.engine.connect() as connection:
            found = issue_for_page(request, connection, issue_id)
            if isinstance(found, Response):
                return found
            user, issue, project = found
            row = _event_row(connection, issue["id"], event)
            if row is None and event is not None:
                return context.error(404, "Not found", "This issue has no such event.")
            older, newer = _neighbours(connection, issue["id"], row.id) if row is not None else (None, None)
            facets = queries.tag_facets(connection, issue["id"])
            shown = row.event_id if row is not None else None
            summary = _summary_values(connection, request, issue, _range(range_name), shown)
            live_since = _version(connection, issue["id"]) or ""
            files = event_attachments(connection, issue["project_id"], row.event_id) if row is not None else []
            data, unreadable = _event_data(connection, row)
            team = team_values(connection, issue)
        values = {
            **summary,
            **team,
            "user": user,
            "project": project,
            "facets": facets,
            "event": event_view(data) if isinstance(data, dict) else None,
            "unreadable": unreadable,
            "older": older,
            "newer": newer,
            "live_since": live_since,
            "attachments": files,
            "can_download": user.is_admin,
        }
        return context.page("issue.html", values)

    @router.get("/issues/{issue_id}/attachments/{attachment_id}")
    def attachment_download(request: Request, issue_id: str, attachment_id: str) -> Response:
        """An attachment of one of the issue's events, for administrators: a member who may see the issue gets 403
        (as for a settings change), anyone else the issue page's 404, and no session the login page."""
        context = web(request)
        with context.engine.connect() as connection:
            found = issue_for_page(request, connection, issue_id)
            if isinstance(found, Response):
                return found
            user, issue, _ = found
            if not user.is_admin:
                return context.error(403, "Not allowed", "Only administrators can download attachments.")
            wanted = _issue_id(attachment_id)  # the same range check: attachment ids are 64-bit row ids too
            row = None if wanted is None else find_attachment(connection, wanted, issue["id"])
        if row is None:
            return context.error(404, "Not found", "This issue has no such attachment.")
        return download(row.filename, row.data)

    @router.get("/issues/{issue_id}/summary")
    def issue_summary(
        request: Request, issue_id: str, event: str | None = None, range_name: RangeParam = None
    ) -> Response:
        """The live part of the issue page alone, for htmx (live updates and the chart's range)."""
        context = web(request)
        with context.engine.connect() as connection:
            found = issue_for_page(request, connection, issue_id)
            if isinstance(found, Response):
                return found
            shown = event.replace("\x00", "")[:64] if event else None
            values = _summary_values(connection, request, found[1], _range(range_name), shown)
        return context.page("_issue_summary.html", values)

    @router.get("/issues/{issue_id}/live")
    def issue_live(request: Request, issue_id: str, since: str = "") -> Response:
        """Server-Sent Events: ``changed`` when the issue's counts or status change (see ``live``)."""
        context = web(request)
        session = context.cookies.read(request)
        with context.engine.connect() as connection:
            user = session_user(connection, session)
            found = None if user is None else _visible_issue(connection, user, _issue_id(issue_id))
        if found is None:
            return context.error(404, "Not found", "There is no such issue, or you are not logged in.")
        project_id, key = found[1].id, found[0]["id"]

        def read(connection: Connection) -> str | None:
            reader = session_user(connection, session)
            if reader is None or not can_see_project(connection, reader, project_id):
                return None
            return _version(connection, key)

        return event_stream(request.app.state.live, request, read, since, recheck=TICK)

    @router.post("/issues/{issue_id}/status")
    def change_status(request: Request, issue_id: str) -> Response:
        context = web(request)
        status = ACTIONS.get(form(request).get("action", ""))
        choice = form(request).get("snooze", "forever")
        with context.engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
            user = current_user(request, connection)
            if user is None:  # a session ended elsewhere: log in again, then back to the issue
                return RedirectResponse(f"/login?next={quote(f'/issues/{issue_id}', safe='/')}", status_code=303)
            found = _visible_issue(connection, user, _issue_id(issue_id))
            if found is None:
                return _not_found(context)
            if status is None:
                return context.error(400, "Unknown action", "Choose Resolve, Ignore or Reopen.")
            if choice not in SNOOZE_CHOICES or (choice != "forever" and status != "ignored"):
                return context.error(400, "Unknown choice", "Choose how long to ignore the issue from the list.")
            until = _snooze(choice, now())
            by = Actor(user.id, user.email)
            queries.set_status(connection, status, issues.c.id == found[0]["id"], by=by, until=until)
        return RedirectResponse(f"/issues/{found[0]['id']}", status_code=303)

    router.include_router(build_issue_team_router(_issue_to_change, _not_found))
    return router


def _issue_to_change(connection: Connection, user: User, issue_id: str) -> dict[str, Any] | None:
    """The issue a form changes, when the user may see it (``None`` alike for a missing and a hidden issue)."""
    found = _visible_issue(connection, user, _issue_id(issue_id))
    return None if found is None else found[0]
