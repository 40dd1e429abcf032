"""Path parameters of the REST API that name a stored row by its number: issues, alert channels, alert rules.

FastAPI turns the path segment into a Python ``int`` of any size; SQLite cannot even compare a column with an
integer beyond 64 bits (``OverflowError``), so a number no row can have is answered 404 here, before a query.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Path
from fastapi.responses import JSONResponse
from sqlalchemy import Connection

from stackwatch.server.api.queries import event_projects

__all__ = ["MAX_ID", "ChannelId", "IssueId", "RuleId", "event_project", "stored_id"]

MAX_ID = 2**63 - 1  # the widest id column (BIGINT on PostgreSQL, INTEGER on SQLite)


def stored_id(value: int, what: str) -> int:
    """``value`` when a row can have it as its id; else 404, like an id that is not there."""
    if not 0 < value <= MAX_ID:
        shown = str(value) if len(str(value)) <= 40 else f"{str(value)[:20]}…"
        raise HTTPException(404, f"no {what} {shown}")
    return value


def _issue_id(issue_id: Annotated[int, Path(description="The issue's id")]) -> int:
    return stored_id(issue_id, "issue")


def _channel_id(channel_id: Annotated[int, Path(description="The alert channel's id")]) -> int:
    return stored_id(channel_id, "alert channel")


def _rule_id(rule_id: Annotated[int, Path(description="The alert rule's id")]) -> int:
    return stored_id(rule_id, "alert rule")


IssueId = Annotated[int, Depends(_issue_id)]
ChannelId = Annotated[int, Depends(_channel_id)]
RuleId = Annotated[int, Depends(_rule_id)]


def event_project(connection: Connection, event_id: str, *, ask: str) -> int | JSONResponse:
    """The project that stores the event with this id; 404 when none does, and, when several do, the 409 answer
    that names them and the project-scoped address ``ask`` to use instead (an event id is unique per project only).
    """
    found = event_projects(connection, event_id)
    if not found:
        raise HTTPException(404, f"no event {event_id}")
    if len(found) > 1:
        slugs = [slug for _, slug in found]
        detail = f"event {event_id} is stored in {len(slugs)} projects ({', '.join(slugs)}): ask {ask}"
        return JSONResponse({"detail": detail, "projects": slugs}, status_code=409)
    return found[0][0]
