"""The REST API, ``/api/v1``: projects, issues, events, workflow runs and alerts, behind bearer tokens."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Connection, Engine, select

from stackwatch.server.api import queries
from stackwatch.server.api.alerts import add_alert_routes
from stackwatch.server.api.attachments import add_attachment_routes
from stackwatch.server.api.models import (
    EventConflict,
    EventDetail,
    EventPage,
    Issue,
    IssueDetail,
    IssuePage,
    IssueUpdate,
    Project,
    ProjectUpdate,
)
from stackwatch.server.api.params import IssueId, event_project
from stackwatch.server.api.saved_searches import add_saved_search_routes, token_user
from stackwatch.server.api.team import add_team_routes, assign_issue, token_actor, token_of
from stackwatch.server.config import Settings
from stackwatch.server.digest.grouping import moving_from
from stackwatch.server.retention import Limits, stored_totals
from stackwatch.server.search import Search, SearchError, parse
from stackwatch.server.storage import snooze, throttle
from stackwatch.server.storage.accounts import (
    GROUPING_SETTINGS,
    RETENTION_BOUNDS,
    AccountError,
    Token,
    dsn,
    find_token,
    touch_token,
    update_grouping,
    update_project,
)
from stackwatch.server.storage.db import now
from stackwatch.server.storage.payloads import PayloadUnreadable
from stackwatch.server.storage.schema import events, issues, project_keys, projects

__all__ = ["build_router"]

Status = Literal["unresolved", "resolved", "ignored"]


def _snooze_of(change: IssueUpdate) -> snooze.Snooze | None:
    """The snooze condition of a change (None: none asked for); a bad one, or one without
    ``"status": "ignored"``, is a 422."""
    if "ignore" in change.model_fields_set and change.status != "ignored":
        raise HTTPException(422, 'ignore: goes with "status": "ignored"')
    if change.ignore is None:
        return None
    try:
        return snooze.parse(change.ignore, now())
    except snooze.SnoozeError as error:
        raise HTTPException(422, str(error)) from None


Sort = Literal["last_seen", "first_seen", "events", "users", "runs"]
READ_METHODS = frozenset({"GET", "HEAD"})  # all a read-only token may do
LAST_USED_STEP = 60  # seconds: how stale a token's "last used" may be
QUERY_HELP = 'A search, e.g. is:unresolved level:error,fatal release:"web@1.2" (docs/api.md#searching-issues)'


def _token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "send Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


def _no_nul(request: Request) -> None:
    """PostgreSQL refuses NUL characters even in a query's parameters; no valid value contains one."""
    if "\x00" in request.url.path or any("\x00" in value for value in request.query_params.values()):
        raise HTTPException(400, "NUL characters are not allowed in paths or parameters")


def _search(query: str | None) -> Search:
    """The parsed ``query``; 400 naming what is wrong and where."""
    try:
        return parse(query)
    except SearchError as error:
        raise HTTPException(400, f"invalid search: {error}") from None


def _project_id(connection: Connection, slug: str) -> int | None:
    found = connection.execute(select(projects.c.id).where(projects.c.slug == slug)).scalar()
    return None if found is None else int(found)


def build_router(engine: Engine, settings: Settings) -> APIRouter:
    base_url = settings.base_url

    def authenticated(request: Request, token: Annotated[str, Depends(_token)]) -> Token:
        """The token's record. Wrong tokens are counted per client address; an address past the limit is refused
        (429) before its token is looked at. A read-only token may only read."""
        counter, moment = throttle.api_counter(request.client.host if request.client else "unknown"), now()
        with engine.connect() as connection:
            wait = throttle.blocked(connection, counter, moment)
            found = None if wait else find_token(connection, token)
        if wait:
            raise HTTPException(
                429,
                f"too many wrong API tokens from this address; try again in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        if found is None:
            with engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
                throttle.reserve(connection, [counter], moment)
            raise HTTPException(401, "invalid or revoked API token", headers={"WWW-Authenticate": "Bearer"})
        if found.scope != "admin" and request.method not in READ_METHODS:
            raise HTTPException(403, "this API token is read-only: it may GET and HEAD, not change anything")
        # Recording use is a write: at most once a minute per token, so that reads do not queue behind the digest.
        if found.last_used_at is None or moment - found.last_used_at >= LAST_USED_STEP:
            with engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
                touch_token(connection, found.id, moment)
        request.state.token = found  # who acts, for the routes that record it (``token_of``)
        return found

    defaults = Limits(settings.retention_days, settings.retention_max_events)
    router = APIRouter(prefix="/api/v1", dependencies=[Depends(_no_nul), Depends(authenticated)], tags=["api"])

    def public_base(request: Request) -> str:
        return base_url or str(request.base_url).rstrip("/")

    def project_rows(request: Request, slug: str | None = None) -> list[dict[str, Any]]:
        query = select(projects).order_by(projects.c.id)
        if slug is not None:
            query = query.where(projects.c.slug == slug)
        moment = now()
        with engine.connect() as connection:
            rows = connection.execute(query).all()
            # Newest first, so the dict keeps each project's oldest active key: the DSN ``project_dsn`` prints.
            keys = dict(
                connection.execute(
                    select(project_keys.c.project_id, project_keys.c.public_key)
                    .where(project_keys.c.active.is_(True))
                    .order_by(project_keys.c.id.desc())
                ).all()
            )
            stored = stored_totals(connection, [row.id for row in rows])
        return [
            {
                "id": row.id,
                "slug": row.slug,
                "name": row.name,
                "dsn": dsn(public_base(request), keys[row.id], row.id) if row.id in keys else None,
                "collect_ips": row.collect_ips,
                "scrub_emails": row.scrub_emails,
                "scrub_ips": row.scrub_ips,
                "retention_days": row.retention_days,
                "max_events": row.max_events,
                "effective_retention_days": defaults.of(row.retention_days, row.max_events).days,
                "effective_max_events": defaults.of(row.retention_days, row.max_events).max_events,
                "stored_events": stored[row.id][0],
                "stored_bytes": stored[row.id][1],
                **grouping_fields(row, moment),
            }
            for row in rows
        ]

    def grouping_fields(row: Any, moment: float) -> dict[str, Any]:
        previous = moving_from(row.grouping_previous, row.grouping_transition_until, moment)
        transition = {"from_version": previous, "until": queries.iso(row.grouping_transition_until)}
        return {
            "grouping_version": row.grouping_version,
            "grouping_transition": None if previous is None else transition,
            "stacktrace_rules": row.stacktrace_rules or "",
            "fingerprint_rules": row.fingerprint_rules or "",
        }

    @router.get("/projects", response_model=list[Project])
    def list_projects(request: Request) -> list[dict[str, Any]]:
        return project_rows(request)

    @router.patch("/projects/{slug}", response_model=Project)
    def patch_project(slug: str, change: ProjectUpdate, request: Request) -> dict[str, Any]:
        # A null privacy setting changes nothing; a null retention setting means "the server's" again.
        values = {
            name: value
            for name, value in change.model_dump(exclude_unset=True).items()
            if value is not None or name in RETENTION_BOUNDS
        }
        grouping = {name: values.pop(name) for name in GROUPING_SETTINGS if name in values}
        with engine.connect() as connection:
            connection = connection.execution_options(sqlite_write=True)
            with connection.begin():
                try:
                    found = update_project(connection, slug, **values)
                    found = found and update_grouping(connection, slug, **grouping)
                except AccountError as error:
                    raise HTTPException(422, str(error)) from None
                if not found:
                    raise HTTPException(404, f"no project {slug!r}")
        return project_rows(request, slug)[0]

    @router.get("/projects/{slug}/issues", response_model=IssuePage)
    def list_issues(
        slug: str,
        request: Request,
        status: Status | None = None,
        level: str | None = None,
        environment: str | None = None,
        release: str | None = None,
        component: str | None = None,
        workflow_id: str | None = None,
        query: Annotated[str | None, Query(description=QUERY_HELP)] = None,
        sort: Sort = "last_seen",
        cursor: str | None = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 25,
    ) -> dict[str, Any]:
        with engine.connect() as connection:
            project_id = _project_id(connection, slug)
            if project_id is None:
                raise HTTPException(404, f"no project {slug!r}")
            filters = queries.IssueFilters(
                status=status,
                level=level,
                environment=environment,
                release=release,
                component=component,
                workflow_id=workflow_id,
                search=_search(query),
                user_id=token_user(request),
            )
            try:
                return queries.issue_page(connection, project_id, filters, sort, cursor, limit)
            except SearchError as error:
                raise HTTPException(400, f"invalid search: {error}") from None

    @router.get("/issues/{issue_id}", response_model=IssueDetail)
    def get_issue(issue_id: IssueId, hours: Annotated[int, Query(ge=1, le=24 * 90)] = 24) -> dict[str, Any]:
        with engine.connect() as connection:
            issue = queries.issue_by_id(connection, issue_id)
            return {
                **issue,
                "tags": queries.tag_facets(connection, issue_id),
                "hourly": queries.hourly_series(connection, issue_id, hours),
                "hashes": queries.grouping_hashes_of(connection, issue_id),
            }

    @router.patch("/issues/{issue_id}", response_model=Issue)
    def patch_issue(
        issue_id: IssueId,
        change: IssueUpdate,
        request: Request,
        tasks: BackgroundTasks,
    ) -> dict[str, Any]:
        sent = change.model_fields_set
        if not sent:
            raise HTTPException(422, "send status (with ignore, or not), assignee or both")
        if "status" in sent and change.status is None:
            raise HTTPException(422, "status: expected unresolved, resolved or ignored")
        until = _snooze_of(change)
        with engine.connect() as connection:
            connection = connection.execution_options(sqlite_write=True)
            with connection.begin():
                issue, by = queries.issue_by_id(connection, issue_id), token_actor(connection, token_of(request))
                if change.status is not None:
                    queries.set_status(connection, change.status, issues.c.id == issue_id, by=by, until=until)
                tell = assign_issue(connection, settings, issue, change.assignee, by) if "assignee" in sent else None
            if tell is not None:  # after the commit: the e-mail names a change that happened
                tasks.add_task(tell)
            return queries.issue_by_id(connection, issue_id)

    @router.get("/issues/{issue_id}/events", response_model=EventPage)
    def issue_events(
        issue_id: IssueId, cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=100)] = 25
    ) -> dict[str, Any]:
        with engine.connect() as connection:
            queries.issue_by_id(connection, issue_id)
            return queries.event_page(connection, events.c.issue_id == issue_id, cursor, limit)

    def event_detail(connection: Connection, event_id: str, project_id: int) -> dict[str, Any]:
        row = queries.find_event(connection, event_id, events.c.project_id == project_id)
        if row is None:
            raise HTTPException(404, f"no event {event_id}")
        try:
            data = queries.event_data(connection, row)
        except PayloadUnreadable as exc:
            raise HTTPException(500, f"event {row.event_id} is stored but cannot be read: {exc}") from None
        return {**queries.event_summary(row, queries.data_title(data)), "project_id": row.project_id, "data": data}

    @router.get(
        "/events/{event_id}",
        response_model=EventDetail,
        responses={409: {"model": EventConflict, "description": "The id is stored in several projects"}},
    )
    def get_event(event_id: str) -> Any:
        """The event with this id, when one project stores it; else 409 naming the projects that do."""
        with engine.connect() as connection:
            found = event_project(connection, event_id, ask="/api/v1/projects/{slug}/events/{event_id}")
            return found if isinstance(found, JSONResponse) else event_detail(connection, event_id, found)

    @router.get("/projects/{slug}/events/{event_id}", response_model=EventDetail)
    def get_project_event(slug: str, event_id: str) -> dict[str, Any]:
        with engine.connect() as connection:
            project_id = _project_id(connection, slug)
            if project_id is None:
                raise HTTPException(404, f"no project {slug!r}")
            return event_detail(connection, event_id, project_id)

    @router.get("/runs/{run_id}/events", response_model=EventPage)
    def run_events(
        run_id: str, cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=100)] = 100
    ) -> dict[str, Any]:
        with engine.connect() as connection:
            return queries.event_page(connection, events.c.run_id == run_id, cursor, limit)

    add_alert_routes(router, engine, settings, public_base)
    add_attachment_routes(router, engine)
    add_saved_search_routes(router, engine)
    add_team_routes(router, engine)
    return router
