"""The inbox: accepted envelopes, durable before ingest answers, until the digest has taken them.

Writes are group-committed: requests hand their rows to one writer thread, which commits everything that is
waiting in a single transaction and then wakes every request in it. Under load one fsync covers many
requests; when idle a request waits for one short transaction.

Two layouts, one interface:

* PostgreSQL — the ``inbox`` table in the main database. The digest deletes the rows it takes in the same
  transaction that stores their results, so each envelope is digested exactly once, even with several workers.
* SQLite — a separate database file, so that an ingest commit never waits for the write lock that a digest
  transaction holds on the main file. SQLite cannot commit atomically across two WAL files, so the digest
  records the last inbox id it stored in the main database (``digest_state``) in the same transaction as the
  results, reads only rows above it, and deletes rows at or below it afterwards. A crash between the two leaves
  rows that are skipped, never digested twice.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select
from sqlalchemy.dialects import sqlite

from stackwatch.server.storage import db
from stackwatch.server.storage.schema import digest_state, inbox

__all__ = ["Inbox", "InboxRow", "open_inbox"]

log = logging.getLogger("stackwatch.inbox")

_CURSOR = "inbox_cursor"
_MAX_GROUP = 2000


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: int
    project_id: int
    received_at: float
    client_ip: str | None
    body: bytes


@dataclass(slots=True)
class _Pending:
    row: dict[str, Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


class Inbox(abc.ABC):
    """Base: the group-committing writer. Subclasses say where rows live and how the digest takes them."""

    def __init__(self, write_engine: Engine):
        self._write_engine = write_engine
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        # Set after every commit, so an in-process digest starts at once instead of at its next poll.
        self.wakeup = threading.Event()
        # (time.monotonic(), the error) of the last write, while it failed: /readyz reports it.
        self.write_failure: tuple[float, str] | None = None

    # --- writing (ingest) -------------------------------------------------------------------------
    def start_writer(self) -> None:
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_loop, name="stackwatch-inbox-writer", daemon=True)
            self._writer.start()

    def stop_writer(self) -> None:
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join(timeout=30)
            self._writer = None

    async def put(self, project_id: int, received_at: float, client_ip: str | None, body: bytes) -> None:
        """Return once the envelope is committed; raise if it could not be."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        row = {"project_id": project_id, "received_at": received_at, "client_ip": client_ip, "body": body}
        self._queue.put(_Pending(row, loop, future))
        await future

    def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            group = [first]
            while len(group) < _MAX_GROUP:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                group.append(more)
            self._commit_group(group)

    def _commit_group(self, group: list[_Pending]) -> None:
        error: BaseException | None = None
        try:
            with self._write_engine.connect() as connection:
                connection = connection.execution_options(sqlite_write=True)
                with connection.begin():
                    connection.execute(insert(inbox), [pending.row for pending in group])
        except Exception as exc:  # the database is down or full: every request in the group gets a 503
            log.exception("inbox write failed for %d envelopes", len(group))
            error = exc
            self.write_failure = (time.monotonic(), str(getattr(exc, "orig", None) or exc))
        else:
            self.write_failure = None
        for pending in group:
            pending.loop.call_soon_threadsafe(_settle, pending.future, error)
        self.wakeup.set()

    # --- reading (digest) -------------------------------------------------------------------------
    @abc.abstractmethod
    def take(self, connection: Connection, limit: int) -> list[InboxRow]:
        """Rows to digest, inside the digest's transaction on the main database."""

    def done(self, connection: Connection, rows: Sequence[InboxRow]) -> None:  # noqa: B027 - optional hook
        """Mark rows digested, inside the same transaction as their results."""

    def after_commit(self, rows: Sequence[InboxRow]) -> None:  # noqa: B027 - optional hook
        """Clean up once the digest's transaction is committed."""

    @abc.abstractmethod
    def backlog(self) -> int:
        """Envelopes accepted and not yet digested."""

    def close(self) -> None:
        self.stop_writer()


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def _row(record: Any) -> InboxRow:
    return InboxRow(record.id, record.project_id, record.received_at, record.client_ip, bytes(record.body))


class PostgresInbox(Inbox):
    def take(self, connection: Connection, limit: int) -> list[InboxRow]:
        claimed = select(inbox.c.id).order_by(inbox.c.id).limit(limit).with_for_update(skip_locked=True)
        statement = delete(inbox).where(inbox.c.id.in_(claimed.scalar_subquery())).returning(*inbox.c)
        return sorted((_row(record) for record in connection.execute(statement)), key=lambda row: row.id)

    def backlog(self) -> int:
        with self._write_engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(inbox)).scalar_one())


class SqliteInbox(Inbox):
    def __init__(self, inbox_engine: Engine, main_engine: Engine):
        super().__init__(inbox_engine)
        self._main_engine = main_engine
        inbox.create(inbox_engine, checkfirst=True)

    def _cursor(self, connection: Connection) -> int:
        value = connection.execute(select(digest_state.c.value).where(digest_state.c.name == _CURSOR)).scalar()
        return int(value or 0)

    def take(self, connection: Connection, limit: int) -> list[InboxRow]:
        cursor = self._cursor(connection)
        with self._write_engine.connect() as inbox_connection:
            query = select(inbox).where(inbox.c.id > cursor).order_by(inbox.c.id).limit(limit)
            return [_row(record) for record in inbox_connection.execute(query)]

    def done(self, connection: Connection, rows: Sequence[InboxRow]) -> None:
        if not rows:
            return
        last = max(row.id for row in rows)
        statement = sqlite.insert(digest_state).values(name=_CURSOR, value=last)
        connection.execute(statement.on_conflict_do_update(index_elements=["name"], set_={"value": last}))

    def after_commit(self, rows: Sequence[InboxRow]) -> None:
        if not rows:
            return
        last = max(row.id for row in rows)
        with self._write_engine.connect() as connection:
            connection = connection.execution_options(sqlite_write=True)
            with connection.begin():
                connection.execute(delete(inbox).where(inbox.c.id <= last))

    def backlog(self) -> int:
        with self._main_engine.connect() as main:
            cursor = self._cursor(main)
        with self._write_engine.connect() as connection:
            query = select(func.count()).select_from(inbox).where(inbox.c.id > cursor)
            return int(connection.execute(query).scalar_one())


def open_inbox(main_engine: Engine, database_url: str, *, synchronous: str = "FULL") -> Inbox:
    path = db.inbox_path(database_url)
    if path is None:
        if main_engine.dialect.name == "sqlite":
            raise ValueError("an in-memory SQLite database cannot hold a durable inbox")
        return PostgresInbox(main_engine)
    return SqliteInbox(db.connect(f"sqlite:///{path}", synchronous=synchronous), main_engine)
