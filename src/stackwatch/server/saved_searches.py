"""A user's saved issue searches, per project: what the REST API and the dashboard's issue list both store and read.

A search is kept as its text and parsed again each time it is used, so it means what the syntax means then. It is
checked when it is saved: one that does not parse, or names a user that does not exist, is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError

from stackwatch.server.api.queries import searcher
from stackwatch.server.search import SearchError, conditions, parse
from stackwatch.server.storage.db import now
from stackwatch.server.storage.schema import saved_searches

__all__ = ["MAX_NAME", "SavedSearch", "SavedSearchError", "check", "create", "delete_one", "list_for"]

MAX_NAME = 200  # saved_searches.name


class SavedSearchError(ValueError):
    """A search that cannot be saved; ``status`` is the HTTP status the REST API answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class SavedSearch:
    id: int
    name: str
    query: str
    created_at: float


def _saved(row: Any) -> SavedSearch:
    return SavedSearch(int(row.id), str(row.name), str(row.query), float(row.created_at))


def list_for(connection: Connection, user_id: int, project_id: int) -> list[SavedSearch]:
    """The user's saved searches of the project, by name."""
    query = (
        select(saved_searches)
        .where(saved_searches.c.user_id == user_id, saved_searches.c.project_id == project_id)
        .order_by(saved_searches.c.name, saved_searches.c.id)
    )
    return [_saved(row) for row in connection.execute(query)]


def check(connection: Connection, name: str, query: str, user_id: int) -> tuple[str, str]:
    """The name and query as they are saved (trimmed); :class:`SavedSearchError` when they cannot be."""
    name, query = name.strip(), query.strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise SavedSearchError(422, f"a saved search needs a name of 1 to {MAX_NAME} characters")
    try:
        found = parse(query)
        conditions(found, searcher(connection, found, user_id))
    except SearchError as error:
        raise SavedSearchError(400, f"the search is not valid: {error}") from None
    return name, query


def create(connection: Connection, user_id: int, project_id: int, name: str, query: str) -> SavedSearch:
    """Save a search under a name unique to the user and project (409 when taken). The caller holds the write
    transaction, in which the check for the name and the insert are one."""
    name, query = check(connection, name, query, user_id)
    taken = connection.execute(
        select(saved_searches.c.id).where(
            saved_searches.c.user_id == user_id,
            saved_searches.c.project_id == project_id,
            saved_searches.c.name == name,
        )
    ).first()
    if taken is not None:
        raise SavedSearchError(409, f"you already have a saved search named {name!r} in this project")
    values = {"user_id": user_id, "project_id": project_id, "name": name, "query": query, "created_at": now()}
    try:
        row = connection.execute(insert(saved_searches).values(**values).returning(*saved_searches.c)).one()
    except IntegrityError:  # the same name saved at the same moment by another request
        raise SavedSearchError(409, f"you already have a saved search named {name!r} in this project") from None
    return _saved(row)


def delete_one(connection: Connection, user_id: int, project_id: int, search_id: int) -> bool:
    """Delete the user's saved search of the project; ``False`` when there is none (or it is another user's)."""
    if not 0 < search_id < 2**31:  # beyond the 32-bit column: no such row, and PostgreSQL would refuse to compare
        return False
    deleted = connection.execute(
        delete(saved_searches).where(
            saved_searches.c.id == search_id,
            saved_searches.c.user_id == user_id,
            saved_searches.c.project_id == project_id,
        )
    )
    return bool(deleted.rowcount)
