"""Saved searches in the REST API: a user's own, per project, so only for API tokens that belong to a user.

Storing and checking is ``server.saved_searches``, shared with the dashboard; its ``SavedSearchError`` carries the
status to answer with (400 a search that does not parse, 409 a name taken, 422 a name too long or empty).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Engine, select

from stackwatch.server import saved_searches
from stackwatch.server.api.queries import iso
from stackwatch.server.api.team import token_of
from stackwatch.server.storage.schema import projects

__all__ = ["SavedSearchCreate", "SavedSearchOut", "add_saved_search_routes", "token_user"]


class SavedSearchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    query: str


class SavedSearchOut(BaseModel):
    id: int
    name: str
    query: str
    created_at: str


def token_user(request: Request) -> int | None:
    """The user the request's API token belongs to (``None``: a token of no user), as ``authenticated`` found it."""
    return token_of(request).user_id


def _owner(request: Request) -> int:
    user_id = token_user(request)
    if user_id is None:
        raise HTTPException(403, "saved searches are a user's: this API token belongs to no user")
    return user_id


def _project_id(connection: Connection, slug: str) -> int:
    found = connection.execute(select(projects.c.id).where(projects.c.slug == slug)).scalar()
    if found is None:
        raise HTTPException(404, f"no project {slug!r}")
    return int(found)


def _shown(found: saved_searches.SavedSearch) -> dict[str, Any]:
    return {"id": found.id, "name": found.name, "query": found.query, "created_at": iso(found.created_at)}


def add_saved_search_routes(router: APIRouter, engine: Engine) -> None:
    @router.get("/projects/{slug}/saved-searches", response_model=list[SavedSearchOut])
    def list_saved(slug: str, request: Request) -> list[dict[str, Any]]:
        user_id = _owner(request)
        with engine.connect() as connection:
            found = saved_searches.list_for(connection, user_id, _project_id(connection, slug))
        return [_shown(one) for one in found]

    @router.post("/projects/{slug}/saved-searches", response_model=SavedSearchOut, status_code=201)
    def create_saved(slug: str, body: SavedSearchCreate, request: Request) -> dict[str, Any]:
        user_id = _owner(request)
        with engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
            project_id = _project_id(connection, slug)
            try:
                found = saved_searches.create(connection, user_id, project_id, body.name, body.query)
            except saved_searches.SavedSearchError as error:
                raise HTTPException(error.status, str(error)) from None
        return _shown(found)

    @router.delete("/projects/{slug}/saved-searches/{search_id}", status_code=204)
    def delete_saved(
        slug: str, search_id: Annotated[int, Path(description="The saved search's id")], request: Request
    ) -> Response:
        user_id = _owner(request)
        with engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
            if not saved_searches.delete_one(connection, user_id, _project_id(connection, slug), search_id):
                raise HTTPException(404, f"you have no saved search {search_id} in this project")
        return Response(status_code=204)
