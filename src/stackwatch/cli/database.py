"""``stackwatch db``: the store on disk: how much it takes, and giving the space of deleted rows back."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
from sqlalchemy import text

from stackwatch.cli.common import database_errors, main, open_engine, settings_from, store_options
from stackwatch.server.storage import db, disk


@main.group("db")
def database() -> None:
    """The store on disk (see docs/operations.md#giving-the-disk-back-and-a-bound-on-it)."""


@database.command("usage")
@store_options
def db_usage(**flags: Any) -> None:
    """Print the disk the store takes, and the share of STACKWATCH_MAX_DISK_MB."""
    settings = settings_from(**flags)
    with open_engine(settings) as engine:
        used = disk.usage(settings.database_url, engine)
    line = f"the store takes {_megabytes(used)}"
    if settings.max_disk_mb > 0:
        limit = settings.max_disk_mb * 1024 * 1024
        line += f" of its {settings.max_disk_mb} MB ({used / limit:.0%}; ingest refuses new events at 100%)"
    click.echo(line)


@database.command("vacuum")
@store_options
def db_vacuum(**flags: Any) -> None:
    """Rewrite the SQLite files with incremental auto-vacuum, giving every free page back (PostgreSQL: VACUUM).

    Writes wait while it runs (the digest, and ingest while the inbox is rewritten): run it at a quiet time.
    """
    settings = settings_from(**flags)
    with open_engine(settings) as engine:
        main_path = db.sqlite_path(settings.database_url)
        if main_path is None:
            started = time.monotonic()
            with engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM"))
            click.echo(f"PostgreSQL: VACUUM done in {time.monotonic() - started:.1f} s")
            return
        with engine.connect() as connection:
            _vacuum("database", main_path, connection)
    inbox_path = db.inbox_path(settings.database_url)
    if inbox_path is not None and inbox_path.exists():
        inbox_engine = db.connect(f"sqlite:///{inbox_path}", synchronous=settings.sqlite_synchronous, pool_size=1)
        try:
            with database_errors(f"inbox {inbox_path}"), inbox_engine.connect() as connection:
                _vacuum("inbox", inbox_path, connection)
        finally:
            inbox_engine.dispose()


def _vacuum(what: str, path: Path, connection: Any) -> None:
    before = _size(path)
    started = time.monotonic()
    disk.vacuum(connection)
    click.echo(
        f"{what} {path}: {_megabytes(before)} -> {_megabytes(_size(path))}, incremental auto-vacuum, "
        f"in {time.monotonic() - started:.1f} s"
    )


def _size(path: Path) -> int:
    return sum(
        candidate.stat().st_size for candidate in (path, path.with_name(path.name + "-wal")) if candidate.exists()
    )


def _megabytes(size: int) -> str:
    return f"{size / (1 << 20):.1f} MB"
