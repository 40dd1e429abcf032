"""The issue list page, ``/projects/{slug}/issues``: filters, the search box, sort, pages, bulk status changes
and the user's saved searches.

The list is read with the REST API's own query (``api.queries.issue_page``) and changed with its status change
(``api.queries.set_status``), so the page and the API cannot disagree about what a filter or "resolved" means.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from fastapi import APIRouter, HTTPException
from sqlalchemy import Connection, case, func, select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from stackwatch.server import saved_searches
from stackwatch.server.api import queries
from stackwatch.server.search import Search, SearchError, parse
from stackwatch.server.storage.activity import Actor
from stackwatch.server.storage.db import now
from stackwatch.server.storage.schema import LEVELS, issues
from stackwatch.server.web.access import ProjectRef, User, can_see_project, visible_project
from stackwatch.server.web.activity import issue_sparklines
from stackwatch.server.web.context import Web, WebRoute, clean, epoch, form, form_values, web
from stackwatch.server.web.live import event_stream
from stackwatch.server.web.routes import current_user, login_redirect
from stackwatch.server.web.sessions import session_user

__all__ = ["ListView", "build_issues_router", "project_for_page"]

STATUS_CHOICES = ("unresolved", "resolved", "ignored", "all")
SORTS = tuple(queries.SORT_COLUMNS)
TEXT_FILTERS = ("level", "environment", "release", "component", "workflow_id", "query")
ACTIONS = {"resolve": "resolved", "ignore": "ignored", "reopen": "unresolved"}
DEFAULT_LIMIT, MAX_LIMIT = 25, 100
MAX_ID = 2**63 - 1


def _limit(value: str | None) -> int:
    try:
        return min(max(int(clean(value)), 1), MAX_LIMIT)
    except ValueError:
        return DEFAULT_LIMIT


@dataclass(frozen=True, slots=True)
class ListView:
    """What the list shows, as read from (and written back to) the page's query string."""

    status: str = "unresolved"
    sort: str = "last_seen"
    limit: int = DEFAULT_LIMIT
    text: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> ListView:
        status, sort = clean(params.get("status")), clean(params.get("sort"))
        return cls(
            status=status if status in STATUS_CHOICES else "unresolved",
            sort=sort if sort in SORTS else "last_seen",
            limit=_limit(params.get("limit")),
            text={key: clean(params.get(key)) for key in TEXT_FILTERS if clean(params.get(key))},
        )

    @property
    def query(self) -> str:
        return self.text.get("query", "")

    def filters(self, found: Search, user_id: int) -> queries.IssueFilters:
        """The filters of the menus and the parsed search box; a status named in the search (``is:resolved``)
        wins over the Status menu, whose default would otherwise hide what was asked for."""
        status = None if self.status == "all" or found.names_status() else self.status
        menus = {key: value for key, value in self.text.items() if key != "query"}
        return queries.IssueFilters(status=status, **menus, search=found, user_id=user_id)

    def query_string(self, **extra: str) -> str:
        params: dict[str, str | int] = {"status": self.status, **self.text, "sort": self.sort}
        if self.limit != DEFAULT_LIMIT:
            params["limit"] = self.limit
        return urlencode({**params, **extra})


def _not_found(context: Web) -> Response:
    return context.error(404, "Not found", "There is no such project, or you are not a member of it.")


def _row(issue: dict[str, Any]) -> dict[str, Any]:
    """An issue of the API's list, with its times as epochs for the ``when`` filter."""
    return {**issue, "first_seen": epoch(issue["first_seen"]), "last_seen": epoch(issue["last_seen"])}


def _issue_ids(values: list[str]) -> list[int]:
    ids = {int(value) for value in values if value.isascii() and value.isdigit() and len(value) < 20}
    return sorted(issue_id for issue_id in ids if 0 < issue_id <= MAX_ID)


def _list_url(project: ProjectRef, view: ListView) -> str:
    return f"/projects/{quote(project.slug, safe='')}/issues?{view.query_string()}"


def _version(connection: Connection, project_id: int) -> str:
    """What the list shows of a project, as one string: it changes when a live list should be redrawn."""
    row = connection.execute(
        select(
            func.count(),
            func.sum(case((issues.c.status == "unresolved", 1), else_=0)),
            func.max(issues.c.last_seen),
            func.sum(issues.c.event_count),
        ).where(issues.c.project_id == project_id)
    ).one()
    return ":".join(str(value or 0) for value in row)


def project_for_page(request: Request, connection: Connection, slug: str) -> tuple[User, ProjectRef] | Response:
    """The logged-in user and the project they asked for; or the answer to give instead: the login page (and
    back), or the same 404 for a missing and a hidden project."""
    user = current_user(request, connection)
    if user is None:
        return login_redirect(request)
    project = visible_project(connection, user, slug)
    if project is None:
        return _not_found(web(request))
    return user, project


def _read_page(
    connection: Connection, project: ProjectRef, user: User, view: ListView, cursor: str | None
) -> tuple[dict[str, Any], str]:
    """The page of issues the view shows, and what is wrong with its search ("": nothing). A search that is not
    valid shows no issues rather than all of them: a list that ignored a typo could be taken for its answer."""
    try:
        filters = view.filters(parse(view.query), user.id)
        return queries.issue_page(connection, project.id, filters, view.sort, cursor, view.limit), ""
    except SearchError as error:
        return {"data": [], "next_cursor": None}, f"The search is not valid: {error}."


def _list(
    request: Request,
    slug: str,
    *,
    rows_only: bool,
    view: ListView | None = None,
    saved_error: saved_searches.SavedSearchError | None = None,
) -> Response:
    context = web(request)
    view = view or ListView.parse(request.query_params)
    cursor = clean(request.query_params.get("cursor")) or None
    with context.engine.connect() as connection:
        found = project_for_page(request, connection, slug)
        if isinstance(found, Response):
            return found
        user, project = found
        try:
            page, search_error = _read_page(connection, project, user, view, cursor)
        except HTTPException:
            return context.error(400, "Page not found", "The page link is not valid; start from the first page.")
        rows = [_row(issue) for issue in page["data"]]
        sparklines = issue_sparklines(connection, [row["id"] for row in rows], now())
        live_since = "" if rows_only else _version(connection, project.id)
        saved = [] if rows_only else saved_searches.list_for(connection, user.id, project.id)
    page_query = view.query_string(**({"cursor": cursor} if cursor else {}))
    values: dict[str, Any] = {
        "issues": rows,
        "sparklines": sparklines,
        "rows_url": f"/projects/{quote(project.slug, safe='')}/issues/rows?{page_query}",
        "connect_url": f"/projects/{quote(project.slug, safe='')}/connect",  # what the empty list points to
    }
    if rows_only:
        return context.page("_issue_rows.html", values)
    session = context.cookies.read(request)
    next_cursor = page["next_cursor"]
    values |= {
        "user": user,
        "csrf_token": session.csrf if session else "",
        "project": project,
        "view": view,
        "next_query": view.query_string(cursor=next_cursor) if next_cursor else None,
        "statuses": STATUS_CHOICES,
        "levels": LEVELS,
        "sorts": SORTS,
        "live_since": live_since,
        "search_error": search_error,
        "saved_searches": saved,
        "saved_error": f"The search was not saved: {saved_error}." if saved_error else "",
    }
    status_code = saved_error.status if saved_error else 400 if search_error else 200
    return context.page("issues.html", values, status_code=status_code)


def build_issues_router() -> APIRouter:
    router = APIRouter(route_class=WebRoute, include_in_schema=False)

    @router.get("/projects/{slug}/issues")
    def issue_list(request: Request, slug: str) -> Response:
        return _list(request, slug, rows_only=False)

    @router.get("/projects/{slug}/issues/rows")
    def issue_rows(request: Request, slug: str) -> Response:
        """The list's rows alone, for htmx (live updates), with the same filters, sort and page."""
        return _list(request, slug, rows_only=True)

    @router.get("/projects/{slug}/issues/live")
    def issue_list_live(request: Request, slug: str, since: str = "") -> Response:
        """Server-Sent Events: ``changed`` when the project's issues change (see ``live``)."""
        context = web(request)
        session = context.cookies.read(request)
        with context.engine.connect() as connection:
            user = session_user(connection, session)
            project = None if user is None else visible_project(connection, user, slug)
        if project is None:
            return _not_found(context)
        project_id = project.id

        def read(connection: Connection) -> str | None:
            reader = session_user(connection, session)
            if reader is None or not can_see_project(connection, reader, project_id):
                return None
            return _version(connection, project_id)

        return event_stream(request.app.state.live, request, read, since)

    @router.post("/projects/{slug}/issues/bulk")
    def bulk_status(request: Request, slug: str) -> Response:
        context = web(request)
        fields = form(request)
        view = ListView.parse(dict(parse_qsl(fields.get("filters", ""))))
        status = ACTIONS.get(fields.get("action", ""))
        ids = _issue_ids(form_values(request, "issue_id"))
        with context.engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
            found = _poster(request, connection, slug, view)
            if isinstance(found, Response):
                return found
            user, project = found
            if status is None:
                return context.error(400, "Unknown action", "Choose Resolve, Ignore or Reopen.")
            if ids:
                # Only this project's issues: an id of another project in the form changes nothing.
                by = Actor(user.id, user.email)
                queries.set_status(connection, status, issues.c.project_id == project.id, issues.c.id.in_(ids), by=by)
        return RedirectResponse(_list_url(project, view), status_code=303)

    @router.post("/projects/{slug}/issues/saved-searches")
    def save_search(request: Request, slug: str) -> Response:
        """Save the search of the list under a name; the list again, with the message, when it cannot be."""
        context = web(request)
        fields = form(request)
        view = ListView.parse(dict(parse_qsl(fields.get("filters", ""))))
        try:  # a refusal leaves the transaction by its exception: rolled back, also after a failed insert
            with context.engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
                found = _poster(request, connection, slug, view)
                if isinstance(found, Response):
                    return found
                user, project = found
                saved_searches.create(connection, user.id, project.id, fields.get("name", ""), view.query)
                return RedirectResponse(_list_url(project, view), status_code=303)
        except saved_searches.SavedSearchError as error:
            return _list(request, slug, rows_only=False, view=view, saved_error=error)

    @router.post("/projects/{slug}/issues/saved-searches/{search_id}/delete")
    def delete_search(request: Request, slug: str, search_id: str) -> Response:
        context = web(request)
        view = ListView.parse(dict(parse_qsl(form(request).get("filters", ""))))
        with context.engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
            found = _poster(request, connection, slug, view)
            if isinstance(found, Response):
                return found
            user, project = found
            wanted = _issue_ids([search_id])  # a positive number in ASCII digits, or nothing
            if not wanted or not saved_searches.delete_one(connection, user.id, project.id, wanted[0]):
                return context.error(404, "Not found", "You have no such saved search in this project.")
        return RedirectResponse(_list_url(project, view), status_code=303)

    return router


def _poster(request: Request, connection: Connection, slug: str, view: ListView) -> tuple[User, ProjectRef] | Response:
    """The user posting a form of the list and their project; or the answer to give instead: the login page and
    back to the list (a session ended elsewhere), or the same 404 for a missing and a hidden project."""
    user = current_user(request, connection)
    if user is None:
        target = f"/projects/{quote(slug, safe='')}/issues?{view.query_string()}"
        return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)
    project = visible_project(connection, user, slug)
    if project is None:
        return _not_found(web(request))
    return user, project
