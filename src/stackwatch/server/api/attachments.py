"""The attachments part of the REST API: what is stored with an event — names, types and sizes, not the data.

The files themselves are downloaded from the dashboard, by administrators (docs/dashboard.md): they are whatever
a client sent, and an API token is not an administrator's session. File names are shown as the digest stored
them (scrubbed like every other event string).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Connection, Engine, select

from stackwatch.server.api.models import EventConflict
from stackwatch.server.api.params import event_project
from stackwatch.server.api.queries import find_event, iso
from stackwatch.server.storage.schema import attachments, events, projects

__all__ = ["Attachment", "add_attachment_routes"]


class Attachment(BaseModel):
    id: int
    project_id: int
    event_id: str
    filename: str
    content_type: str | None
    attachment_type: str
    size: int
    created_at: str


def _wanted(event_id: str) -> str:
    return event_id.replace("-", "").lower()  # as events and attachments store ids (``queries.find_event``)


def _listed(connection: Connection, project_id: int, event_id: str) -> list[dict[str, Any]]:
    query = (
        select(*(attachments.c[name] for name in Attachment.model_fields))
        .where(attachments.c.project_id == project_id, attachments.c.event_id == _wanted(event_id))
        .order_by(attachments.c.id)
    )
    return [{**row._mapping, "created_at": iso(row.created_at)} for row in connection.execute(query)]


def add_attachment_routes(router: APIRouter, engine: Engine) -> None:
    @router.get(
        "/events/{event_id}/attachments",
        response_model=list[Attachment],
        responses={409: {"model": EventConflict, "description": "The event id is stored in several projects"}},
    )
    def list_event_attachments(event_id: str) -> Any:
        """The attachments of the event with this id, when one project stores it; else 409 naming the projects."""
        with engine.connect() as connection:
            found = event_project(connection, event_id, ask="/api/v1/projects/{slug}/events/{event_id}/attachments")
            return found if isinstance(found, JSONResponse) else _listed(connection, found, event_id)

    @router.get("/projects/{slug}/events/{event_id}/attachments", response_model=list[Attachment])
    def list_project_event_attachments(slug: str, event_id: str) -> list[dict[str, Any]]:
        with engine.connect() as connection:
            project_id = connection.execute(select(projects.c.id).where(projects.c.slug == slug)).scalar()
            if project_id is None:
                raise HTTPException(404, f"no project {slug!r}")
            if find_event(connection, event_id, events.c.project_id == project_id) is None:
                raise HTTPException(404, f"no event {event_id} in project {slug!r}")
            return _listed(connection, int(project_id), event_id)
