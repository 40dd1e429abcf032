"""The issue page's team workflow: its assignee, its comments and its activity log.

Any user who may see an issue's project — an administrator or a member — may assign it (to any such user) and
comment on it: members are the team that works on the project's issues, and both are recorded with who did them.
The forms post with the session's CSRF token, checked by ``WebRoute`` before any of this runs. Writes go through
the same storage functions as the REST API (``storage.assignment``, ``storage.comments``), so they record the
same activity entries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from sqlalchemy import Connection
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from stackwatch.server.alerts.assigned import assignment_mail
from stackwatch.server.storage import activity, comments
from stackwatch.server.storage.assignment import AssignError, assignable, reassign
from stackwatch.server.web.access import User
from stackwatch.server.web.context import Web, WebRoute, clean, form, web
from stackwatch.server.web.markdown import render
from stackwatch.server.web.routes import current_user

__all__ = ["ACTIVITY_SHOWN", "build_issue_team_router", "team_values"]

ACTIVITY_SHOWN = 200  # the latest entries the page shows; the REST API pages through all of them
STATUS_WORDS = {"resolved": "resolved the issue", "ignored": "ignored the issue", "unresolved": "reopened the issue"}


def _assigned(data: dict[str, Any]) -> str:
    if data.get("assignee"):
        return f"assigned the issue to {data['assignee']}"
    return f"unassigned the issue (was {data['previous']})" if data.get("previous") else "unassigned the issue"


def _regression(data: dict[str, Any]) -> str:
    release = f" in release {data['release']}" if data.get("release") else ""
    return f"reopened the issue: a new event{release} after it was resolved (regression)"


def _escalating(data: dict[str, Any]) -> str:
    condition = data.get("condition") or {}
    if "until" in condition:
        why = f"the snooze ended at {condition['until']}"
    elif "events" in condition:
        why = f"{condition['events']} more events arrived"
    elif "users" in condition:
        why = f"{condition['users']} more users were affected"
    elif "per_hour" in condition:
        why = f"{condition['per_hour']} events arrived within an hour"
    else:
        why = "its snooze condition was met"
    return f"unresolved the snoozed issue: {why} (escalating)"


def _status(data: dict[str, Any]) -> str:
    words = STATUS_WORDS.get(str(data.get("to")), f"set the status to {data.get('to')}")
    condition = data.get("ignore")
    if not isinstance(condition, dict) or not condition:
        return words
    kind, value = next(iter(condition.items()))
    until = {"until": f"until {value}", "events": f"until {value} more events", "users": f"until {value} more users"}
    return f"{words} {until.get(kind, f'until {value} events within an hour')}"


# kind: what the page says the actor did (plain text, escaped by the template). Kinds without a line here are shown
# by name, so a new kind shows up before it has its own words.
DESCRIBE: dict[str, Callable[[dict[str, Any]], str]] = {
    "status": _status,
    "regression": _regression,
    "escalating": _escalating,
    "assigned": _assigned,
    "comment": lambda data: "commented",
}


def _timeline(connection: Connection, issue_id: int) -> list[dict[str, Any]]:
    """The latest activity, oldest first, each comment entry with its text rendered."""
    entries = activity.recent_activity(connection, issue_id, ACTIVITY_SHOWN)
    wanted = [int(e.data["comment_id"]) for e in entries if e.kind == "comment" and "comment_id" in e.data]
    found = comments.comments_by_id(connection, issue_id, wanted)
    shown = []
    for entry in entries:
        comment = found.get(int(entry.data.get("comment_id", 0))) if entry.kind == "comment" else None
        describe = DESCRIBE.get(entry.kind)
        shown.append(
            {
                "id": entry.id,
                "kind": entry.kind,
                "actor": entry.actor,
                "at": entry.created_at,
                "text": describe(entry.data) if describe else entry.kind,
                "html": render(comment.text) if comment is not None else None,
            }
        )
    return shown


def team_values(connection: Connection, issue: dict[str, Any]) -> dict[str, Any]:
    """What the issue page shows of the team workflow (``issue``: as the REST API shows it)."""
    return {
        "assignee": issue["assignee"],
        "assignable": [person.email for person in assignable(connection, issue["project_id"])],
        "timeline": _timeline(connection, issue["id"]),
        "max_comment": comments.MAX_TEXT,
    }


def _back(issue_id: int, anchor: str) -> RedirectResponse:
    return RedirectResponse(f"/issues/{issue_id}#{anchor}", status_code=303)


def _login_again(issue_id: str) -> RedirectResponse:
    """A session ended elsewhere: log in again, then back to the issue."""
    return RedirectResponse(f"/login?next={quote(f'/issues/{issue_id}', safe='/')}", status_code=303)


def _mail(context: Web, connection: Connection, issue: dict[str, Any], to: str, by: str) -> BackgroundTask | None:
    send = assignment_mail(connection, context.settings, issue["id"], to=to, by=by)
    return None if send is None else BackgroundTask(send)


def _assignee_of(user: User, fields: dict[str, str]) -> str | None:
    """The email the form names: the user's own for "Assign to me", else the chosen one (``None``: nobody)."""
    return user.email if fields.get("action") == "me" else clean(fields.get("assignee")) or None


def build_issue_team_router(
    visible_issue: Callable[[Connection, User, str], dict[str, Any] | None], not_found: Callable[[Web], Response]
) -> APIRouter:
    """The routes; ``visible_issue``: the issue page's access rule (the issue, or ``None`` alike for a missing and a
    hidden one), ``not_found``: its answer then."""
    router = APIRouter(route_class=WebRoute, include_in_schema=False)

    def issue_for(request: Request, connection: Connection, issue_id: str) -> tuple[User, dict[str, Any]] | Response:
        """The logged-in user and the issue, or the answer when there is none: log in again, or not found."""
        user = current_user(request, connection)
        if user is None:
            return _login_again(issue_id)
        issue = visible_issue(connection, user, issue_id)
        return not_found(web(request)) if issue is None else (user, issue)

    @router.post("/issues/{issue_id}/assign")
    def assign(request: Request, issue_id: str) -> Response:
        context = web(request)
        with context.engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
            found = issue_for(request, connection, issue_id)
            if isinstance(found, Response):
                return found
            user, issue = found
            by = activity.Actor(user.id, user.email)
            try:
                told = reassign(connection, issue["project_id"], issue["id"], _assignee_of(user, form(request)), by=by)
            except AssignError as error:
                return context.error(422, "Cannot assign", f"{str(error).capitalize()}.")
            task = None if told is None else _mail(context, connection, issue, told.email, user.email)
        response = _back(issue["id"], "assignee")
        response.background = task  # sent after the commit, so the e-mail names a change that happened
        return response

    @router.post("/issues/{issue_id}/comments")
    def comment(request: Request, issue_id: str) -> Response:
        context = web(request)
        text = form(request).get("text", "").replace("\r\n", "\n")
        with context.engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
            found = issue_for(request, connection, issue_id)
            if isinstance(found, Response):
                return found
            user, issue = found
            try:
                comments.add_comment(connection, issue["id"], text, by=activity.Actor(user.id, user.email))
            except comments.CommentError as error:
                return context.error(422, "Comment not added", f"{str(error).capitalize()}.")
        return _back(issue["id"], "activity")

    return router
