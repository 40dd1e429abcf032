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
  rows that are skipped, never digested twice. Deleted rows are zeroed (``secure_delete``), and the digest
  checkpoints the inbox's WAL and truncates it soon after (:meth:`SqliteInbox.tidy`), so the file keeps no
  frames of envelopes already digested.

Bodies are sealed (``sealing.py``) before they are written, and opened when the digest takes them: what is at
rest is ciphertext, whatever copies of it the database keeps. A row that does not open is handed to the digest
marked ``unreadable``, with its stored bytes, for the quarantine.
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
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select
from sqlalchemy.dialects import sqlite

from stackwatch.server.storage import db, disk
from stackwatch.server.storage.schema import digest_state, inbox
from stackwatch.server.storage.sealing import Sealer, SealError

__all__ = ["Inbox", "InboxRow", "open_inbox"]

log = logging.getLogger("stackwatch.inbox")

_CURSOR = "inbox_cursor"
_MAX_GROUP = 2000
# The SQLite inbox's WAL is checkpointed and truncated once the inbox is idle (at most once a second), and at
# least every few seconds under a load that never lets it be idle: each checkpoint holds ingest's commits for
# the few milliseconds it takes, and the digest's 20-second promise (docs/redaction.md) leaves room for both.
_CHECKPOINT_IDLE = 1.0
_CHECKPOINT_BUSY = 5.0
# Free pages given back per idle turn (32 MB): the rest, after a larger burst, on the next turns.
_RECLAIM_IDLE = 8192


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: int
    project_id: int
    received_at: float
    client_ip: str | None
    body: bytes  # the envelope as sent; the stored (sealed) bytes when ``unreadable``
    unreadable: str | None = None  # why the stored body did not open


@dataclass(slots=True)
class _Pending:
    row: dict[str, Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


class Inbox(abc.ABC):
    """Base: the group-committing writer. Subclasses say where rows live and how the digest takes them."""

    def __init__(self, write_engine: Engine, sealer: Sealer | None):
        self._write_engine = write_engine
        self._sealer = sealer  # None for administrative commands, which only move stored rows
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
            # Sealed with the rest of the write: ~3 µs for a 4 kB body, ~9 ms for 20 MB (docs/design/raw-data.md).
            rows = [
                {**pending.row, "body": self.seal(pending.row["body"], pending.row["project_id"])} for pending in group
            ]
            with self._write_engine.connect() as connection:
                connection = connection.execution_options(sqlite_write=True)
                with connection.begin():
                    connection.execute(insert(inbox), rows)
        except Exception as exc:  # the database is down or full: every request in the group gets a 503
            log.exception("inbox write failed for %d envelopes", len(group))
            error = exc
            self.write_failure = (time.monotonic(), str(getattr(exc, "orig", None) or exc))
        else:
            self.write_failure = None
        for pending in group:
            pending.loop.call_soon_threadsafe(_settle, pending.future, error)
        self.wakeup.set()

    # --- sealing ----------------------------------------------------------------------------------
    def seal(self, body: bytes, project_id: int) -> bytearray:
        if self._sealer is None:
            raise RuntimeError("this inbox was opened without the secret key and cannot seal")
        return self._sealer.seal(body, project_id)

    def stored_body(self, row: InboxRow) -> bytes | bytearray:
        """The row's body as it is kept at rest (sealed), e.g. for the quarantine."""
        return row.body if row.unreadable is not None else self.seal(row.body, row.project_id)

    def _row(self, record: Any) -> InboxRow:
        if self._sealer is None:
            raise RuntimeError("this inbox was opened without the secret key and cannot open envelopes")
        stored = bytes(record.body)
        try:
            body, unreadable = self._sealer.open(stored, record.project_id), None
        except SealError as exc:
            body, unreadable = stored, str(exc)
        return InboxRow(record.id, record.project_id, record.received_at, record.client_ip, body, unreadable)

    @abc.abstractmethod
    def requeue(self, connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Put rows in their stored form (from the quarantine) back, for another digest; ``connection`` is on
        the main database, in the transaction that takes them out of the quarantine."""

    # --- reading (digest) -------------------------------------------------------------------------
    @abc.abstractmethod
    def take(self, connection: Connection, limit: int) -> list[InboxRow]:
        """Rows to digest, inside the digest's transaction on the main database."""

    def done(self, connection: Connection, rows: Sequence[InboxRow]) -> None:  # noqa: B027 - optional hook
        """Mark rows digested, inside the same transaction as their results."""

    def after_commit(self, rows: Sequence[InboxRow]) -> None:  # noqa: B027 - optional hook
        """Clean up once the digest's transaction is committed."""

    def tidy(self, *, idle: bool) -> None:  # noqa: B027 - optional hook
        """Housekeeping between digest batches; ``idle`` when the last look found the inbox empty."""

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


class PostgresInbox(Inbox):
    def take(self, connection: Connection, limit: int) -> list[InboxRow]:
        claimed = select(inbox.c.id).order_by(inbox.c.id).limit(limit).with_for_update(skip_locked=True)
        statement = delete(inbox).where(inbox.c.id.in_(claimed.scalar_subquery())).returning(*inbox.c)
        return sorted((self._row(record) for record in connection.execute(statement)), key=lambda row: row.id)

    def requeue(self, connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
        # The inbox is a table of the main database: back in the same transaction that leaves the quarantine.
        connection.execute(insert(inbox), list(rows))

    def backlog(self) -> int:
        with self._write_engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(inbox)).scalar_one())


class SqliteInbox(Inbox):
    def __init__(self, inbox_engine: Engine, main_engine: Engine, sealer: Sealer | None, path: Path | None = None):
        super().__init__(inbox_engine, sealer)
        self._main_engine = main_engine
        inbox.create(inbox_engine, checkfirst=True)
        if path is not None:  # a file an older version made, without incremental auto-vacuum
            disk.ensure_incremental(inbox_engine, path, "inbox")
        # Rows deleted since the last complete checkpoint; at start, what an earlier run may have left.
        self._deleted = True
        self._checkpointed = 0.0

    def _cursor(self, connection: Connection) -> int:
        value = connection.execute(select(digest_state.c.value).where(digest_state.c.name == _CURSOR)).scalar()
        return int(value or 0)

    def take(self, connection: Connection, limit: int) -> list[InboxRow]:
        cursor = self._cursor(connection)
        with self._write_engine.connect() as inbox_connection:
            query = select(inbox).where(inbox.c.id > cursor).order_by(inbox.c.id).limit(limit)
            return [self._row(record) for record in inbox_connection.execute(query)]

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
        self._deleted = True

    def requeue(self, connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
        # Committed to the inbox file before the main transaction deletes them from the quarantine: a crash in
        # between leaves an envelope in both, and digesting it twice stores its events once (unique event_id).
        with self._write_engine.connect() as inbox_connection:
            inbox_connection = inbox_connection.execution_options(sqlite_write=True)
            with inbox_connection.begin():
                inbox_connection.execute(insert(inbox), list(rows))

    def tidy(self, *, idle: bool) -> None:
        """Checkpoint the WAL into the file and truncate it, once rows were deleted; when idle, first give the
        free pages back to the disk.

        ``secure_delete`` zeroes a deleted row, but in the WAL: the frames that hold the row as it was written
        stay in the ``-wal`` file until SQLite happens to reuse them, which took ~1,500 later envelopes. A
        ``TRUNCATE`` checkpoint writes the zeroed pages into the database file and empties the WAL.

        A drained inbox is all free pages: 26 MB of them after a burst of 5,000 envelopes, kept for the next
        burst. When the digest finds the inbox empty they are freed (incremental vacuum, in steps of
        ``disk.RECLAIM_STEP`` pages, each its own short transaction so that ingest commits in between), and the
        checkpoint that follows truncates the file. Under a load that never lets the inbox be empty the free
        pages are reused by the next envelopes, and are left alone.
        """
        since = time.monotonic() - self._checkpointed
        if not self._deleted or since < (_CHECKPOINT_IDLE if idle else _CHECKPOINT_BUSY):
            return
        self._checkpointed = time.monotonic()
        with self._write_engine.connect() as connection:
            freed = disk.reclaim(connection, _RECLAIM_IDLE) if idle else 0
            done = disk.checkpoint(connection)
        # Not done: a reader held an older snapshot; try again next time. As many freed as one turn may: more
        # are left for the next.
        if done and freed < _RECLAIM_IDLE:
            self._deleted = False

    def backlog(self) -> int:
        with self._main_engine.connect() as main:
            cursor = self._cursor(main)
        with self._write_engine.connect() as connection:
            query = select(func.count()).select_from(inbox).where(inbox.c.id > cursor)
            return int(connection.execute(query).scalar_one())


def open_inbox(
    main_engine: Engine, database_url: str, *, sealer: Sealer | None = None, synchronous: str = "FULL"
) -> Inbox:
    """The inbox of the database; ``sealer=None`` for commands that only move stored rows (no secret key)."""
    path = db.inbox_path(database_url)
    if path is None:
        if main_engine.dialect.name == "sqlite":
            raise ValueError("an in-memory SQLite database cannot hold a durable inbox")
        return PostgresInbox(main_engine, sealer)
    return SqliteInbox(db.connect(f"sqlite:///{path}", synchronous=synchronous), main_engine, sealer, path)
