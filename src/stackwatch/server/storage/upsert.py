"""``INSERT … ON CONFLICT`` for both backends: the one statement the digest's counters are made of."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, case
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import ColumnElement

__all__ = ["clean", "insert_ignore", "upsert_add"]


def clean(value: Any, limit: int) -> str | None:
    """A string fit for a ``VARCHAR(limit)`` on both backends: PostgreSQL refuses NUL characters."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text[:limit]


def _insert(connection: Connection, table: Table) -> Any:
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def upsert_add(
    connection: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    add: Sequence[str],
    greatest: Sequence[str] = (),
    *,
    ceiling: int | None = None,
    returning: Sequence[str] = (),
) -> list[Any]:
    """Insert rows; on a key conflict add the new values of ``add`` columns to the stored ones and keep the
    larger value of each ``greatest`` column. Returns the ``returning`` columns of every row written, as it now is.

    With ``ceiling``, each sum stops there instead of overflowing: PostgreSQL refuses a ``BIGINT`` sum past
    2^63 - 1 and SQLite silently turns it into a floating-point number. The new values must be at most ``ceiling``
    (the caller clamps them), so ``ceiling - new`` cannot overflow either.
    """
    if not rows:
        return []
    statement = _insert(connection, table)
    excluded = statement.excluded
    updates: dict[str, ColumnElement[Any]] = {name: table.c[name] + excluded[name] for name in add}
    if ceiling is not None:
        for name in add:
            stop = case((table.c[name] > ceiling - excluded[name], ceiling), else_=table.c[name] + excluded[name])
            updates[name] = stop
    for name in greatest:
        updates[name] = case((table.c[name] < excluded[name], excluded[name]), else_=table.c[name])
    upsert = statement.on_conflict_do_update(index_elements=list(keys), set_=updates)
    if not returning:
        connection.execute(upsert, list(rows))
        return []
    return list(connection.execute(upsert.returning(*(table.c[name] for name in returning)), list(rows)))


def insert_ignore(
    connection: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str], returning: Sequence[str]
) -> list[Any]:
    """Insert rows, skip those whose key exists; return the ``returning`` columns of the rows inserted."""
    if not rows:
        return []
    statement = _insert(connection, table).on_conflict_do_nothing(index_elements=list(keys))
    statement = statement.returning(*(table.c[name] for name in returning))
    return list(connection.execute(statement, list(rows)))
