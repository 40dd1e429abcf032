"""Disk: giving back what deleted rows leave, measuring what the store takes, and the limit on it.

* SQLite keeps the pages of deleted rows in the file, as free pages, for later rows; the file never shrinks by
  itself. Stackwatch's files are created with ``auto_vacuum=INCREMENTAL``, so free pages can be handed back to
  the file system in short steps (:func:`reclaim`) without the exclusive lock and the copy of the whole file that
  ``VACUUM`` takes. A file made by an older version (``auto_vacuum=NONE``) is converted once at start when it is
  small (:data:`CONVERT_MAX_BYTES`), otherwise by ``stackwatch db vacuum`` when the operator chooses the moment.
* ``STACKWATCH_MAX_DISK_MB`` bounds the store: :class:`DiskUsage` measures it (files on SQLite, the database on
  PostgreSQL), cached so that ingest can ask on every request. At :data:`RETENTION_PRESSURE` of the limit the
  retention pass deletes more eagerly; at the limit ingest refuses new envelopes with 429 (:data:`REFUSE_PRESSURE`)
  until the usage falls again. See docs/operations.md#giving-the-disk-back-and-a-bound-on-it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text

from stackwatch.server.storage import db

__all__ = [
    "CONVERT_MAX_BYTES",
    "RECLAIM_STEP",
    "REFUSE_PRESSURE",
    "RETENTION_PRESSURE",
    "DiskUsage",
    "ensure_incremental",
    "free_pages",
    "reclaim",
    "store_files",
    "usage",
    "vacuum",
]

log = logging.getLogger("stackwatch.disk")

# A file made with ``auto_vacuum=NONE`` is converted at start (a VACUUM: the whole file rewritten under an
# exclusive lock, ~0.8 s per 100 MB here, and as much free disk again) only below this size; above it, the
# operator runs ``stackwatch db vacuum`` at a moment of their choosing.
CONVERT_MAX_BYTES = 512 * 1024 * 1024
# Pages freed per write transaction. 256 pages (1 MB at SQLite's default page size) hold the write lock for a
# few milliseconds (3 ms median, 10 ms longest: bench/disk_reclaim.py): an ingest commit waiting behind one step
# is not noticeably slower.
RECLAIM_STEP = 256
# Fractions of STACKWATCH_MAX_DISK_MB: from RETENTION_PRESSURE on, the retention pass evicts more eagerly; from
# REFUSE_PRESSURE on, ingest answers 429 until the usage is below it again.
RETENTION_PRESSURE = 0.9
REFUSE_PRESSURE = 1.0
# How long a measurement is trusted: the files' sizes cost a few ``stat`` calls, PostgreSQL's a query that lists
# the database's files.
_REFRESH_SQLITE = 1.0
_REFRESH_POSTGRES = 5.0
_SIDE_FILES = ("-wal", "-journal")


# --- giving back free pages (SQLite) ------------------------------------------------------------------------------
def _driver(connection: Connection) -> Any:
    return connection.connection.driver_connection


def free_pages(connection: Connection) -> int:
    """The file's free pages (0 on PostgreSQL, whose autovacuum keeps its own free space)."""
    if connection.dialect.name != "sqlite":
        return 0
    return int(_driver(connection).execute("PRAGMA freelist_count").fetchone()[0])


def reclaim(connection: Connection, max_pages: int, *, step: int = RECLAIM_STEP) -> int:
    """Hand at most ``max_pages`` free pages back to the file system; return how many were.

    For the retention pass after it deleted rows, and the digest's housekeeping. ``connection`` must not be in a
    transaction: each step of at most ``step`` pages is a write transaction of its own, so that other writers
    (ingest on the inbox, the digest, the dashboard) get the lock between steps. A no-op on PostgreSQL and on a
    SQLite file without incremental auto-vacuum (see :func:`ensure_incremental`).

    ``PRAGMA incremental_vacuum(N)`` frees one page per step of the statement, and Python's ``sqlite3`` steps a
    statement that returns no columns only once: ``execute`` would free one page whatever N is. A script is
    stepped to its end.
    """
    if connection.dialect.name != "sqlite" or max_pages <= 0:
        return 0
    if connection.in_transaction():
        raise RuntimeError("reclaim commits its own short transactions: call it outside a transaction")
    raw = _driver(connection)
    freed = 0
    while freed < max_pages:
        before = int(raw.execute("PRAGMA freelist_count").fetchone()[0])
        if before == 0:
            break
        pages = min(step, max_pages - freed, before)
        try:
            raw.executescript(f"BEGIN IMMEDIATE; PRAGMA incremental_vacuum({int(pages)}); COMMIT;")
        except Exception:
            if raw.in_transaction:
                raw.rollback()
            raise
        after = int(raw.execute("PRAGMA freelist_count").fetchone()[0])
        if after >= before:  # auto_vacuum=NONE: nothing can be freed this way
            break
        freed += before - after
    return freed


def checkpoint(connection: Connection) -> bool:
    """Write the WAL into the file and truncate it; False when a reader's snapshot kept part of it."""
    busy, _frames, _done = _driver(connection).execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return not busy


# --- auto-vacuum mode (SQLite) ------------------------------------------------------------------------------------
def auto_vacuum_mode(connection: Connection) -> int:
    """0 none, 1 full, 2 incremental."""
    return int(_driver(connection).execute("PRAGMA auto_vacuum").fetchone()[0])


def vacuum(connection: Connection) -> None:
    """Rewrite the file with incremental auto-vacuum (``VACUUM``) and truncate the WAL that it filled.

    Takes the exclusive lock for as long as the copy takes, and needs the file's size again in free disk (twice,
    counting the WAL) until it is done.
    """
    if connection.in_transaction():
        raise RuntimeError("VACUUM cannot run in a transaction")
    raw = _driver(connection)
    raw.execute("PRAGMA auto_vacuum=INCREMENTAL")
    raw.execute("VACUUM")
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()


def ensure_incremental(engine: Engine, path: Path, what: str, *, max_bytes: int = CONVERT_MAX_BYTES) -> bool:
    """Convert the SQLite file ``path`` to incremental auto-vacuum once, when it is small enough; True if it is.

    New files get the mode when they are created (``db.connect`` sets it before the first table); this is for
    files that an older version made.
    """
    with engine.connect() as connection:
        if auto_vacuum_mode(connection) != 0:
            return True
        size = _with_wal(path)
        megabytes = size / (1 << 20)
        if size > max_bytes:
            log.warning(
                "the %s file %s (%.0f MB) cannot give the space of deleted rows back to the disk (auto_vacuum=NONE),"
                " and is too large to be converted at start; run `stackwatch db vacuum` (it rewrites the file and"
                " blocks writes meanwhile; it needs %.0f MB of free disk)",
                what,
                path,
                megabytes,
                megabytes,
            )
            return False
        started = time.monotonic()
        vacuum(connection)
        log.info(
            "converted the %s file %s (%.1f MB, now %.1f MB) to incremental auto-vacuum in %.1f s",
            what,
            path,
            megabytes,
            _with_wal(path) / (1 << 20),
            time.monotonic() - started,
        )
        return True


# --- usage and the limit ------------------------------------------------------------------------------------------
def store_files(database_url: str) -> list[Path]:
    """The SQLite files of the store (database, inbox and their WAL); none on PostgreSQL."""
    files: list[Path] = []
    for main in (db.sqlite_path(database_url), db.inbox_path(database_url)):
        if main is not None:
            files += [main, *(main.with_name(main.name + suffix) for suffix in _SIDE_FILES)]
    return files


def usage(database_url: str, engine: Engine) -> int:
    """Bytes the store takes now: the SQLite files' sizes, or PostgreSQL's ``pg_database_size``."""
    files = store_files(database_url)
    if files:
        return sum(_file_bytes(path) for path in files)
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


def _with_wal(path: Path) -> int:
    return _file_bytes(path) + _file_bytes(path.with_name(path.name + "-wal"))


def _file_bytes(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


class DiskUsage:
    """The store's usage against ``STACKWATCH_MAX_DISK_MB``, measured at most every ``refresh`` seconds.

    One per process: ingest, the digest and the dashboard may run apart (``STACKWATCH_ROLE``), and each measures
    for itself. :meth:`current` never measures twice at once: a caller that finds a measurement under way takes
    the previous value.
    """

    def __init__(
        self,
        database_url: str,
        engine: Engine,
        limit_bytes: int,
        *,
        refresh: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._database_url = database_url
        self._engine = engine
        self.limit_bytes = limit_bytes
        self.blocking = not store_files(database_url)  # a query, not a stat: ask it off the event loop
        self._refresh = refresh if refresh is not None else _REFRESH_POSTGRES if self.blocking else _REFRESH_SQLITE
        self._clock = clock
        self._lock = threading.Lock()
        self._bytes = 0
        self._measured: float | None = None

    def stale(self) -> bool:
        return self._measured is None or self._clock() - self._measured >= self._refresh

    def current(self) -> int:
        """Bytes used, measured again when the last measurement is older than ``refresh``."""
        if self.stale() and self._lock.acquire(blocking=self._measured is None):
            try:
                if self.stale():
                    self._bytes = usage(self._database_url, self._engine)
            except Exception:  # the database is unreachable: ingest's own write reports that; try again later
                log.debug("could not measure the store's disk usage", exc_info=True)
            finally:
                self._measured = self._clock()
                self._lock.release()
        return self._bytes

    def pressure(self) -> float:
        """Usage as a fraction of the limit; 0.0 without a limit."""
        if self.limit_bytes <= 0:
            return 0.0
        return self.current() / self.limit_bytes

    def full(self) -> bool:
        """At or over the limit: ingest refuses new envelopes."""
        return self.limit_bytes > 0 and self.pressure() >= REFUSE_PRESSURE
