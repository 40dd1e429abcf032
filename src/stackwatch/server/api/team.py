"""The team workflow of the REST API: an issue's comments and its activity log.

Assignment is part of ``PATCH /issues/{id}`` (``api/routes.py``), through ``assign_issue`` here. Who did
something is the token's user, or the token itself (by name) when it has none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from sqlalchemy import Connection, Engine, select

from stackwatch.server.alerts.assigned import assignment_mail
from stackwatch.server.api import queries
from stackwatch.server.api.models import ActivityPage, Comment, CommentCreate, CommentPage
from stackwatch.server.api.params import IssueId
from stackwatch.server.config import Settings
from stackwatch.server.storage import activity, comments
from stackwatch.server.storage.accounts import Token
from stackwatch.server.storage.assignment import AssignError, reassign
from stackwatch.server.storage.schema import users

__all__ = ["add_team_routes", "assign_issue", "token_actor", "token_of"]


def token_of(request: Request) -> Token:
    """The request's API token, as the router's authentication found it."""
    token: Token = request.state.token
    return token


def token_actor(connection: Connection, token: Token) -> activity.Actor:
    """Who a token acts as: its user (by email), or the token by its name."""
    if token.user_id is not None:
        email = connection.execute(select(users.c.email).where(users.c.id == token.user_id)).scalar()
        if email is not None:
            return activity.Actor(token.user_id, str(email))
    return activity.Actor(None, token.name)


def assign_issue(
    connection: Connection, settings: Settings, issue: dict[str, Any], email: str | None, by: activity.Actor
) -> Callable[[], None] | None:
    """Assign the issue (shown as the API shows it) in the caller's transaction; what tells the assignee by
    e-mail (to run after the commit), when someone else assigned them and SMTP is configured. A refused assignee
    is a 422."""
    try:
        told = reassign(connection, issue["project_id"], issue["id"], email, by=by)
    except AssignError as error:
        raise HTTPException(422, str(error)) from None
    if told is None:
        return None
    return assignment_mail(connection, settings, issue["id"], to=told.email, by=by.name)


def _comment(comment: comments.Comment) -> dict[str, Any]:
    return {
        "id": comment.id,
        "issue_id": comment.issue_id,
        "author": comment.author,
        "user_id": comment.user_id,
        "text": comment.text,
        "created_at": queries.iso(comment.created_at),
    }


def _entry(entry: activity.Entry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "kind": entry.kind,
        "actor": entry.actor,
        "user_id": entry.user_id,
        "data": entry.data,
        "created_at": queries.iso(entry.created_at),
    }


def _after(cursor: str | None) -> int:
    return int(queries.decode_cursor(cursor, 1)[0]) if cursor else 0


def _page(items: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    """A page of ``limit`` items read with one more: the cursor goes on after the last one shown."""
    shown = items[:limit]
    more = len(items) > limit
    return {"data": shown, "next_cursor": queries.encode_cursor([shown[-1]["id"]]) if more else None}


def add_team_routes(router: APIRouter, engine: Engine) -> None:
    """Add the comment and activity endpoints to ``router``."""

    @router.get("/issues/{issue_id}/comments", response_model=CommentPage)
    def list_comments(
        issue_id: IssueId, cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=100)] = 100
    ) -> dict[str, Any]:
        with engine.connect() as connection:
            queries.issue_by_id(connection, issue_id)
            found = comments.list_comments(connection, issue_id, after=_after(cursor), limit=limit + 1)
        return _page([_comment(comment) for comment in found], limit)

    @router.post("/issues/{issue_id}/comments", response_model=Comment, status_code=201)
    def add_comment(issue_id: IssueId, body: CommentCreate, request: Request) -> dict[str, Any]:
        with engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
            queries.issue_by_id(connection, issue_id)
            try:
                comment = comments.add_comment(
                    connection, issue_id, body.text, by=token_actor(connection, token_of(request))
                )
            except comments.CommentError as error:
                raise HTTPException(422, str(error)) from None
        return _comment(comment)

    @router.get("/issues/{issue_id}/activity", response_model=ActivityPage)
    def list_activity(
        issue_id: IssueId, cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=200)] = 100
    ) -> dict[str, Any]:
        with engine.connect() as connection:
            queries.issue_by_id(connection, issue_id)
            found = activity.list_activity(connection, issue_id, after=_after(cursor), limit=limit + 1)
        return _page([_entry(entry) for entry in found], limit)
