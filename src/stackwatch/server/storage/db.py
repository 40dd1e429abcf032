"""Engines for SQLite (WAL) and PostgreSQL (psycopg 3), and the migration entry point."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from stackwatch.server.storage.filemodes import private_file, tighten

__all__ = ["connect", "inbox_path", "migrate", "now", "sqlite_path"]


def now() -> float:
    return time.time()


def iso(stamp: float | None) -> str | None:
    """A UNIX time as the REST API shows times: ISO 8601 in UTC with ``Z``."""
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, UTC).isoformat().replace("+00:00", "Z")


def sqlite_path(database_url: str) -> Path | None:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def inbox_path(database_url: str) -> Path | None:
    """On SQLite the inbox is a file beside the database: ``stackwatch.sqlite3`` → ``stackwatch-inbox.sqlite3``."""
    path = sqlite_path(database_url)
    if path is None:
        return None
    return path.with_name(f"{path.stem}-inbox{path.suffix}")


def connect(database_url: str, *, synchronous: str = "FULL", pool_size: int = 5) -> Engine:
    """An engine for the URL; SQLite files get WAL, a busy timeout and real ``BEGIN IMMEDIATE`` writes."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        path = sqlite_path(database_url)
        if path is not None:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Made 0600 before SQLite opens it, so its -wal and -shm are too (SQLite gives them its mode).
            private_file(path)
            for companion in ("-wal", "-shm"):  # left by an older version that made the database 0644
                tighten(path.with_name(path.name + companion))
        engine = create_engine(url, pool_size=pool_size, max_overflow=10, pool_pre_ping=False)
        _configure_sqlite(engine, synchronous)
        return engine
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return create_engine(url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True)


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    # pysqlite's own transaction handling issues BEGIN lazily and never BEGIN IMMEDIATE; take control of it so
    # that a writing transaction holds the write lock from its start and never fails to upgrade a read lock.
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # A new file gets incremental auto-vacuum, so that free pages can be given back to the disk in short
        # steps (storage/disk.py): set before WAL mode writes the first page, which fixes the mode. Only then:
        # setting it writes a transaction each time, even when the mode is already that one.
        if cursor.execute("PRAGMA page_count").fetchone()[0] == 0:
            cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA cache_size=-32000")
        # Deleted rows are overwritten, not left in free pages: the inbox briefly holds envelopes as sent,
        # before redaction, and nothing of them may outlive their digest.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        mode = "IMMEDIATE" if connection.get_execution_options().get("sqlite_write") else "DEFERRED"
        connection.exec_driver_sql(f"BEGIN {mode}")


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema (Alembic ``upgrade head``)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.connect() as connection:
        connection = connection.execution_options(sqlite_write=True)
        with connection.begin():
            if connection.dialect.name == "postgresql":
                # Several processes may start at once; one migrates, the others wait and then find nothing to do.
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7316001)")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    path = sqlite_path(engine.url.render_as_string(hide_password=False))
    if path is not None:
        from stackwatch.server.storage import disk

        disk.ensure_incremental(engine, path, "database")
