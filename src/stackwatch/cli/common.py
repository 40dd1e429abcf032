"""What every command shares: the database options, settings, the migrated database, table output."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from stackwatch import __version__
from stackwatch.server.config import ConfigError, Settings, load_settings
from stackwatch.server.storage import accounts, datadir, db

__all__ = [
    "compact",
    "configuration",
    "database_errors",
    "init_option",
    "key_values",
    "main",
    "open_engine",
    "safe_url",
    "settings_from",
    "store_options",
    "table",
    "transaction",
]

F = TypeVar("F", bound=Callable[..., Any])


def store_options(command: F) -> F:
    command = click.option("--database-url", help="sqlite:///PATH or postgresql://… [STACKWATCH_DATABASE_URL]")(command)
    command = click.option(
        "--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Data directory [STACKWATCH_DATA_DIR]"
    )(command)
    return command


def init_option(command: F) -> F:
    return click.option(
        "--init",
        is_flag=True,
        help="Create a new, empty database even though the data directory holds an earlier one's files",
    )(command)


def settings_from(*, server: bool = False, init: bool = False, **flags: Any) -> Settings:
    """The validated settings, once the data directory and the SQLite files are known to be writable.

    Checked before the secret key is generated into the data directory, so that a key made by this very start is
    never taken for what an earlier installation left there (see ``storage/datadir.py``).
    """
    settings = _load_settings(flags, server=False)
    try:
        datadir.check_writable(settings.data_dir, settings.database_url, data_dir_needed=server or settings.is_sqlite)
        datadir.check_database_present(settings.data_dir, settings.database_url, init=init)
    except datadir.DataDirError as exc:
        raise click.ClickException(str(exc)) from None
    return _load_settings(flags, server=True) if server else settings


def configuration(**flags: Any) -> Settings:
    """The validated settings, checking and creating nothing (``restore`` must find the data directory as it is)."""
    return _load_settings(flags, server=False)


def _load_settings(flags: dict[str, Any], *, server: bool) -> Settings:
    try:
        return load_settings(flags, server=server)
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


@contextmanager
def database_errors(what: str) -> Iterator[None]:
    """An error of the database (or of the inbox file) ``what`` ends the command with one line, no traceback."""
    try:
        yield
    except DBAPIError as exc:
        message = datadir.one_line(exc)
        if "malformed" in message or "not a database" in message:
            message += " (the file is damaged or not a Stackwatch database: restore it from a backup)"
        raise click.ClickException(f"{what}: {message}") from None
    except datadir.DataDirError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def open_engine(settings: Settings, *, init: bool = False) -> Iterator[Engine]:
    """The migrated database; its errors end the command with a one-line message.

    ``init`` creates the tables in a database that the data directory's marker says had them (``--init``).
    """
    try:
        engine = db.connect(settings.database_url, synchronous=settings.sqlite_synchronous, pool_size=1)
    except OSError as exc:  # the SQLite file's directory cannot be created (a file in the way, no permission)
        raise click.ClickException(f"database {safe_url(settings.database_url)}: {exc.strerror}") from None
    try:
        with database_errors(f"database {safe_url(settings.database_url)}"):
            with engine.connect() as connection:
                datadir.check_initialised(connection, settings.data_dir, settings.database_url, init=init)
            db.migrate(engine)
            datadir.mark_initialised(settings.data_dir, settings.database_url)
            yield engine
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()


@contextmanager
def transaction(settings: Settings, *, init: bool = False) -> Iterator[Connection]:
    """A write transaction on the migrated database."""
    with open_engine(settings, init=init) as engine, engine.connect() as connection:
        connection = connection.execution_options(sqlite_write=True)
        with connection.begin():
            yield connection


@click.group()
@click.version_option(__version__, prog_name="stackwatch")
def main() -> None:
    """Stackwatch: self-hosted, Sentry-compatible error tracking."""


def safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def key_values(_ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param=param)
        pairs[key.strip()] = value
    return pairs


def table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    cells = [header, *[tuple("-" if v is None else str(v) for v in row) for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
